package workload

import (
	"errors"
	"fmt"

	"github.com/qedtorture/qedtorture/props/target"
)

// reopenROKind: "reopen-ro OFF LEN" closes the image cleanly (everything
// durable), opens it read-only, reads [OFF, OFF+LEN) and compares it with
// the model, checks the size, closes it and opens it writable again. A
// read-only open writes nothing; on a Strict Disk (target.Strict) a write,
// write-zeroes, resize and repairing check of the read-only image must be
// refused, a flush and a check without repair succeed (the check clean),
// and every call once it is closed is refused; an Informer must say it is
// read-only (see mapKind).
type reopenROKind struct{}

func (reopenROKind) name() string { return "reopen-ro" }
func (reopenROKind) weight() int  { return 1 }

func (reopenROKind) check(op Op, v *validator) error {
	if err := v.extent(op); err != nil {
		return err
	}
	return v.notNested()
}

func (reopenROKind) args(op Op) string { return fmt.Sprintf("%#x %#x", op.Off, op.Len) }

func (reopenROKind) parse(kw string, args []string) (Op, error) {
	if err := nargs(kw, args, 2); err != nil {
		return Op{}, err
	}
	return parseExtent(ReopenRO, args)
}

func (reopenROKind) gen(g *genState) (Op, bool) {
	if g.size == 0 {
		return Op{}, false
	}
	off, n := extent(g.rng, g.size, g.cs, g.hot)
	return Op{Kind: ReopenRO, Off: off, Len: n}, true
}

func (reopenROKind) run(e *Exec, i int, op Op) error {
	e.snapshot(i)
	err := e.Disk.Close()
	e.Disk = nil
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	e.Model.Flush() // a clean close makes everything durable
	ro, err := e.Target.Open(e.FS, e.ImagePath(), e.OpenOptions(true))
	if err != nil {
		return fmt.Errorf("read-only open: %w", err)
	}
	err = readOnlyChecks(e, ro, i, op)
	if cerr := ro.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("read-only close: %w", cerr)
	}
	if err == nil {
		err = closedChecks(ro)
	}
	if err != nil {
		return err
	}
	if e.Disk, err = e.Target.Open(e.FS, e.ImagePath(), e.OpenOptions(false)); err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	return nil
}

// readOnlyChecks is reopen-ro's work on the read-only Disk d.
func readOnlyChecks(e *Exec, d target.Disk, i int, op Op) error {
	if got, want := d.Size(), e.Model.Size(); got != want {
		return fmt.Errorf("size after read-only open is %#x, want %#x", got, want)
	}
	if in, ok := d.(target.Informer); ok {
		if err := judgeInfo(in.Info(), e, i, true); err != nil {
			return fmt.Errorf("read-only: %w", err)
		}
	}
	buf := make([]byte, op.Len)
	if _, err := d.ReadAt(buf, op.Off); err != nil {
		return fmt.Errorf("read-only read: %w", err)
	}
	if err := e.Model.Verify(op.Off, buf); err != nil {
		return fmt.Errorf("%w: read-only: %w", ErrDataMismatch, err)
	}
	if _, ok := d.(target.Strict); ok {
		if _, err := d.WriteAt(buf[:min(len(buf), 512)], op.Off); err == nil || err.Error() == "" {
			return fmt.Errorf("a write to the read-only image was not refused")
		}
		if err := d.WriteZeroes(op.Off, op.Len); err == nil || err.Error() == "" {
			return fmt.Errorf("write-zeroes to the read-only image was not refused")
		}
		if err := d.Resize(d.Size() + 512); err == nil || err.Error() == "" {
			return fmt.Errorf("a resize of the read-only image was not refused")
		}
		if _, err := d.Check(true); err == nil || err.Error() == "" {
			return fmt.Errorf("a repairing check of the read-only image was not refused")
		}
		// Legal on a read-only image: a flush (nothing to write) and a
		// check without repair, clean after the clean close.
		if err := d.Flush(); err != nil {
			return fmt.Errorf("a flush of the read-only image: %w", err)
		}
		r, err := d.Check(false)
		if err != nil || r.Corruptions != 0 || r.CheckErrors != 0 {
			return fmt.Errorf("a check of the read-only image after a clean close: %+v, %v", r, err)
		}
	}
	return nil
}

// closedChecks is reopen-ro's work on the closed read-only Disk d: on a
// Strict Disk every call (Size aside) must be refused.
func closedChecks(d target.Disk) error {
	if _, ok := d.(target.Strict); !ok {
		return nil
	}
	buf := make([]byte, 512)
	calls := []struct {
		what string
		err  func() error
	}{
		{"read", func() error { _, err := d.ReadAt(buf, 0); return err }},
		{"write", func() error { _, err := d.WriteAt(buf, 0); return err }},
		{"write-zeroes", func() error { return d.WriteZeroes(0, 512) }},
		{"flush", d.Flush},
		{"check", func() error { _, err := d.Check(false); return err }},
		{"resize", func() error { return d.Resize(d.Size() + 512) }},
		{"close", d.Close},
		{"map", func() error {
			if m, ok := d.(target.Mapper); ok {
				_, err := m.Map()
				return err
			}
			return errors.New("no map")
		}},
	}
	for _, c := range calls {
		if err := c.err(); err == nil || err.Error() == "" {
			return fmt.Errorf("a %s on the closed image was not refused", c.what)
		}
	}
	return nil
}

func (reopenROKind) effect(Op, int64) Effect { return Effect{Ranged: true, Reads: true, Barrier: true} }
