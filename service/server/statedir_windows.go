package server

import (
	"errors"
	"syscall"
)

// Windows error codes (winerror.h) that file writes return.
const (
	errorWriteProtect    syscall.Errno = 19   // ERROR_WRITE_PROTECT
	errorHandleDiskFull  syscall.Errno = 39   // ERROR_HANDLE_DISK_FULL
	errorDiskFull        syscall.Errno = 112  // ERROR_DISK_FULL
	errorDiskQuotaExceed syscall.Errno = 1295 // ERROR_DISK_QUOTA_EXCEEDED
)

func isNoSpace(err error) bool {
	return errors.Is(err, errorDiskFull) || errors.Is(err, errorHandleDiskFull) ||
		errors.Is(err, errorDiskQuotaExceed) || errors.Is(err, syscall.ENOSPC)
}

func isReadOnly(err error) bool {
	return errors.Is(err, errorWriteProtect) || errors.Is(err, syscall.EROFS)
}
