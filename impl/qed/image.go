package qed

// STUB: replaced by the implementation. Signatures are the contract.

import (
	"errors"

	"github.com/spf13/afero"
)

var errTODO = errors.New("qed: not implemented yet")

// Image is an open QED image. It is safe for concurrent use.
type Image struct{}

// Create makes a new empty QED image at path on fs.
func Create(fs afero.Fs, path string, opts CreateOptions) error { return errTODO }

// Open opens the QED image at path on fs.
func Open(fs afero.Fs, path string, opts OpenOptions) (*Image, error) { return nil, errTODO }

// ReadHeader reads and validates only the header of the image at path.
func ReadHeader(fs afero.Fs, path string) (Header, error) { return Header{}, errTODO }

func (im *Image) ReadAt(p []byte, off int64) (int, error)  { return 0, errTODO }
func (im *Image) WriteAt(p []byte, off int64) (int, error) { return 0, errTODO }
func (im *Image) WriteZeroes(off, length int64) error      { return errTODO }
func (im *Image) Flush() error                             { return errTODO }
func (im *Image) Close() error                             { return errTODO }
func (im *Image) Size() int64                              { return 0 }
func (im *Image) Resize(newSize int64) error               { return errTODO }
func (im *Image) Header() Header                           { return Header{} }
func (im *Image) Check(repair bool) (CheckReport, error)   { return CheckReport{}, errTODO }
func (im *Image) Map() ([]Extent, error)                   { return nil, errTODO }
