package server

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

func TestStateDirErrorsMapped(t *testing.T) {
	stateErr := func(errno error) error {
		return fmt.Errorf("creating card: %w", &tpmcard.StateError{Dir: "/var/lib/tpmcard", Op: "saving card 01",
			Err: &fs.PathError{Op: "write", Path: "/var/lib/tpmcard/cards/.tmp-01-1", Err: errno}})
	}
	for _, tc := range []struct {
		name string
		err  error
		want wire.Status
		msg  string
	}{
		{"ok/ENOSPC", stateErr(syscall.ENOSPC), wire.StateDirFull, "the state directory /var/lib/tpmcard is full: free space"},
		{"ok/EDQUOT", stateErr(syscall.EDQUOT), wire.StateDirFull, "is full"},
		{"ok/EROFS", stateErr(syscall.EROFS), wire.StateDirReadOnly, "read-only file system: remount it read-write"},
		{"ok/EACCES", stateErr(syscall.EACCES), wire.StateDirPermission, "may not write its state directory /var/lib/tpmcard"},
		{"ok/EPERM", stateErr(syscall.EPERM), wire.StateDirPermission, "permission denied"},
		{"ok/destroy-half-done", fmt.Errorf("destroying: %w: %w", tpmcard.ErrDestroyIncomplete, stateErr(syscall.EROFS)), wire.DestroyIncomplete, "TPM objects are destroyed, its record is not"},
		{"fail/EIO-stays-internal", stateErr(syscall.EIO), wire.Internal, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			se, _ := toStatus(tc.err)
			if se.Status != tc.want || !strings.Contains(se.Message, tc.msg) {
				t.Fatalf("toStatus = %v, want %v with %q", se, tc.want, tc.msg)
			}
			if tc.want != wire.Internal && !serverSide(tc.want) && tc.want != wire.DestroyIncomplete {
				t.Fatalf("%v is not logged", tc.want)
			}
		})
	}
	nr := &tpmcard.NotRecordedError{Done: "the PIN was changed: use the new PIN", Undone: "the record says otherwise", Err: errors.Unwrap(stateErr(syscall.ENOSPC))}
	w, ok := notRecorded(fmt.Errorf("x: %w", nr))
	if !ok || !strings.Contains(w, "the PIN was changed") || !strings.Contains(w, "/var/lib/tpmcard is full") {
		t.Fatalf("notRecorded = %q %v", w, ok)
	}
	if _, ok := notRecorded(stateErr(syscall.ENOSPC)); ok {
		t.Fatal("a plain state error counted as done")
	}
}
