package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// debugLog appends lines to the file TPMCARD_PKCS11_DEBUG names. It never
// sees a PIN: callers log function names, handles and return values. On
// Unix the file is written with plain system calls (see dialService for why
// the module keeps clear of the runtime's poller). A nil *debugLog logs
// nothing.
type debugLog struct{ w io.WriteCloser }

func openDebugLog(path string) *debugLog {
	if path == "" {
		return nil
	}
	w, err := openAppend(path)
	if err != nil {
		return nil
	}
	return &debugLog{w: w}
}

func (l *debugLog) printf(format string, args ...any) {
	if l == nil {
		return
	}
	line := fmt.Sprintf("%s tpmcard-pkcs11[%d]: %s\n", time.Now().Format(time.RFC3339Nano), os.Getpid(), fmt.Sprintf(format, args...))
	_, _ = io.WriteString(l.w, line)
}

func (l *debugLog) close() {
	if l != nil {
		_ = l.w.Close()
	}
}
