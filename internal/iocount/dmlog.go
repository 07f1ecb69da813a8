package iocount

import (
	"io"

	"github.com/qedtorture/qedtorture/crashsim"
)

// ReadDMLog counts the committed entries of a dm-log-writes log of size
// bytes: writes and their bytes, syncs (FLUSH and FUA flags), discards.
// Only entry headers are read (crashsim.ScanDMLog, the one parser of the
// format here); a malformed log is a *crashsim.FormatError naming the
// entry, offset and field.
func ReadDMLog(r io.ReaderAt, size int64) (Counts, error) {
	var c Counts
	_, err := crashsim.ScanDMLog(r, size, func(e crashsim.DMLogEntry) error {
		if e.Flags&crashsim.DMLogFlush != 0 {
			c.Syncs++
		}
		if e.Flags&crashsim.DMLogDiscard != 0 {
			c.Discards++
		} else if e.HasData() {
			c.Writes++
			c.WriteBytes += e.Len
		}
		if e.Flags&crashsim.DMLogFUA != 0 {
			c.Syncs++
		}
		return nil
	})
	if err != nil {
		return Counts{}, err
	}
	return c, nil
}
