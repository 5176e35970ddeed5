package main

import (
	"errors"

	"github.com/tpmcard/tpmcard/service/wire"
)

// rvOf is the CK_RV of a service reply: the one the service chose
// (wire.StatusError.RV, service/server/ckrv.go). The module has no table of
// its own. A reply without one is an UnsupportedReply (an older service
// that does not know the request: CKR_FUNCTION_NOT_SUPPORTED) or an error
// the module made itself; anything else is CKR_FUNCTION_FAILED. The module
// and the service ship and are installed together, so a service that sends
// statuses without RVs is not one to cater for.
func rvOf(err error) rv {
	if err == nil {
		return ckrOK
	}
	se, ok := statusError(err)
	switch {
	case !ok:
		return ckrFunctionFailed
	case se.RV != 0:
		return rv(se.RV)
	case se.Status == wire.Unsupported:
		return ckrFunctionNotSupported
	}
	return ckrFunctionFailed
}

// statusError returns the reply of the service in err's chain.
func statusError(err error) (wire.StatusError, bool) {
	var pe *wire.StatusError
	if errors.As(err, &pe) && pe != nil {
		return *pe, true
	}
	var ve wire.StatusError
	if errors.As(err, &ve) {
		return ve, true
	}
	return wire.StatusError{}, false
}

// isStatusError reports whether err is a reply of the service (as opposed
// to a broken connection).
func isStatusError(err error) bool {
	_, ok := statusError(err)
	return ok
}
