// Package cnierr maps vmcni's errors to CNI error codes in one place.
//
// Plugin code wraps an error with one of the constructors below (Config,
// Decode, Env, Version, TryAgain, Unavailable) at the point where the cause
// is known; everything else is reported as a generic internal error (999).
// ToCNI is the only function that turns errors into *types.Error, and the
// plugin wiring in internal/plugin calls it for every command.
//
// Codes (CNI spec, "Error" section):
//
//	1  incompatible CNI version     (Version)
//	4  invalid environment variables (Env)
//	6  failed to decode content      (Decode)
//	7  invalid network config        (Config)
//	11 try again later               (TryAgain)
//	50 plugin not available (STATUS) (Unavailable)
//	999 anything else
package cnierr

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// ErrUnavailable is the STATUS code "plugin not available" (CNI 1.1, code 50).
const ErrUnavailable uint = 50

// Internal is the code for errors that carry no specific CNI code.
const Internal uint = 999

// codedError attaches a CNI code to an error without hiding it from errors.Is/As.
type codedError struct {
	code uint
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func wrap(code uint, format string, args ...any) error {
	return &codedError{code: code, err: fmt.Errorf(format, args...)}
}

// Config reports invalid network configuration (code 7).
func Config(format string, args ...any) error {
	return wrap(types.ErrInvalidNetworkConfig, format, args...)
}

// Decode reports content that could not be decoded (code 6).
func Decode(format string, args ...any) error {
	return wrap(types.ErrDecodingFailure, format, args...)
}

// Env reports invalid CNI_* environment variables (code 4).
func Env(format string, args ...any) error {
	return wrap(types.ErrInvalidEnvironmentVariables, format, args...)
}

// Version reports an incompatible CNI version (code 1).
func Version(format string, args ...any) error {
	return wrap(types.ErrIncompatibleCNIVersion, format, args...)
}

// TryAgain reports a transient condition; the runtime should retry (code 11).
func TryAgain(format string, args ...any) error {
	return wrap(types.ErrTryAgainLater, format, args...)
}

// Unavailable reports that the plugin cannot serve ADD right now (code 50).
func Unavailable(format string, args ...any) error {
	return wrap(ErrUnavailable, format, args...)
}

// Code returns the CNI code carried by err (the outermost one), or Internal.
func Code(err error) uint {
	var coded *codedError
	if errors.As(err, &coded) {
		return coded.code
	}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		return cniErr.Code
	}
	return Internal
}

// ToCNI converts err to the CNI error object printed on stdout. A nil err
// gives nil. Errors already of type *types.Error (from libraries such as
// skel or invoke) keep their code, message and details.
func ToCNI(err error) *types.Error {
	if err == nil {
		return nil
	}
	var cniErr *types.Error
	if errors.As(err, &cniErr) && Code(err) == cniErr.Code {
		if cniErr.Error() == err.Error() {
			return cniErr
		}
		return &types.Error{Code: cniErr.Code, Msg: err.Error(), Details: cniErr.Details}
	}
	return &types.Error{Code: Code(err), Msg: err.Error()}
}
