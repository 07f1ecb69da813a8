package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/qedtorture/qedtorture/impl/blackbox"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/impl/qemu"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// The --target names: the only place that maps names to implementations
// under test. The engine (internal/campaign) imports none; it is handed a
// target.Target by run and a resolver (resolveTarget) by replay. A new
// in-process implementation adds its adapter to inProcessTargets.

// inProcessTargets returns the in-process targets of this build by their
// --target name (each one's Name): impl/qed, the deliberately broken
// wrappers and, with the qeddefects tag, the seeded defects.
func inProcessTargets() map[string]target.Target {
	m := map[string]target.Target{}
	add := func(t target.Target) {
		if _, dup := m[t.Name()]; dup {
			panic("qedtorture: two targets named " + t.Name())
		}
		m[t.Name()] = t
	}
	add(qedtarget.Target{})
	for _, t := range qedtarget.Broken() {
		add(t)
	}
	for _, t := range qedtarget.Defects() {
		add(t)
	}
	return m
}

// targetNames lists the names resolveTarget accepts, sorted.
func targetNames() []string {
	var out []string
	for n := range inProcessTargets() {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// targetHelp is --target's help text.
func targetHelp() string {
	h := "implementation under test (impl/qed, qemu, broken:noflush, broken:nosync; exec:COMMAND, a program speaking qemu-io's commands on stdin, recorded with strace: docs/black-box.md"
	if !qed.DefectsCompiled {
		return h + "; defect:NAME in builds with -tags qeddefects)"
	}
	return h + ", defect:NAME with NAME one of the seeded defects: " + strings.Join(defectNames(), ", ") + ")"
}

func defectNames() []string {
	var out []string
	for _, d := range qed.DefectCatalogue {
		out = append(out, d.Name)
	}
	return out
}

// resolveTarget returns the target named name: run's --target and the
// target an artifact names (replay). Its error is one line saying what the
// name is and what to do: QEMU has its own command (for now), and a
// seeded defect named in a build without them needs -tags qeddefects.
func resolveTarget(name string) (target.Target, error) {
	if t, ok := inProcessTargets()[name]; ok {
		return t, nil
	}
	if strings.HasPrefix(strings.ToLower(name), "qemu") || strings.HasPrefix(name, "exec:") {
		// QEMU and programs run out of process (resolveDriver), not over
		// crashsim.
		return nil, fmt.Errorf("target %q runs out of process: 'run --target %s' records it; the in-process targets are %s", name, name, strings.Join(targetNames(), ", "))
	}
	if d, ok := strings.CutPrefix(name, "defect:"); ok {
		known := slices.Contains(defectNames(), d)
		switch {
		case known && !qed.DefectsCompiled:
			return nil, fmt.Errorf("target %q is a seeded defect of impl/qed, and this qedtorture was built without them: rebuild it with -tags qeddefects (go build -tags qeddefects ./cmd/qedtorture)", name)
		case !known:
			return nil, fmt.Errorf("unknown target %q: impl/qed has no seeded defect %q (they are %s)", name, d, strings.Join(defectNames(), ", "))
		}
	}
	return nil, fmt.Errorf("unknown target %q (want one of %s)", name, strings.Join(targetNames(), ", "))
}

// resolveDriver returns the driver of a target that runs out of process
// (QEMU: qemu-io over blklogwrites, its log handed to the engine), or nil
// for an in-process name (resolveTarget's).
func resolveDriver(name string) (campaign.Driver, error) {
	if name != "qemu" {
		return nil, nil
	}
	tool, err := qemutool.Find()
	if err != nil {
		return nil, fmt.Errorf("target qemu: %w", err)
	}
	return &qemu.Driver{Tool: tool, QEMUStates: qemu.DefaultQEMUStates}, nil
}

// execDriver returns the driver of exec:COMMAND (a program speaking
// qemu-io's commands, recorded with strace); a qemu-io program gets
// QEMU's adaptations (table_size 1 refused, ...).
func execDriver(command string) (*blackbox.Driver, error) {
	d, err := blackbox.New(command, referenceTarget())
	if err != nil {
		return nil, err
	}
	if fields := strings.Fields(command); filepath.Base(fields[0]) == "qemu-io" {
		d.AdaptFunc = func(w *workload.Workload) (*workload.Workload, []campaign.Adaptation) {
			w, ad := qemu.Adapt(w)
			out := make([]campaign.Adaptation, len(ad))
			for i, a := range ad {
				out[i] = campaign.Adaptation{Kind: string(a.Quirk), What: a.What}
			}
			return w, out
		}
	}
	return d, nil
}

// resolveAny returns the driver of any --target name: exec:COMMAND, qemu
// or an in-process target (--diff, replay).
func resolveAny(name string) (campaign.Driver, error) {
	if command, ok := strings.CutPrefix(name, "exec:"); ok {
		return execDriver(command)
	}
	if d, err := resolveDriver(name); d != nil || err != nil {
		return d, err
	}
	t, err := resolveTarget(name)
	if err != nil {
		return nil, err
	}
	return campaign.InProcess(t), nil
}

// referenceTarget is the in-process implementation that recovers the
// crash states of targets that have no in-process recovery of their own
// (QEMU) and runs the other side of their differential runs: impl/qed.
func referenceTarget() target.Target { return qedtarget.Target{} }
