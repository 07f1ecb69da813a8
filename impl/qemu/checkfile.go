package qemu

import (
	"fmt"

	"github.com/qedtorture/qedtorture/props/check"
	"github.com/spf13/afero"
)

// checkFile runs the independent structural checker (props/check) on the
// image at path on fs. Errors name the path.
func checkFile(fs afero.Fs, path string) (*check.Report, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("qemu: structure check of %s: %w", path, err)
	}
	defer f.Close()
	return check.File(f)
}
