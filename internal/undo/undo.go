// Package undo is the rollback stack every ADD uses.
//
// Push a step right after the side effect it reverts succeeds. If the
// operation fails, Rollback runs the steps in reverse order, keeps going when
// one fails, and returns all their errors joined. Commit forgets the steps once
// the operation has succeeded. A Stack is not safe for concurrent use.
//
//	var u undo.Stack
//	if err := createTap(); err != nil { return err }
//	u.Push("delete tap", deleteTap)
//	...
//	if err != nil { return errors.Join(err, u.Rollback()) }
//	u.Commit()
package undo

import (
	"errors"
	"fmt"
)

// Step reverts one side effect.
type Step struct {
	Name string
	Fn   func() error
}

// Stack is an ordered list of undo steps.
type Stack struct {
	steps []Step
}

// Push records how to revert the side effect that just happened.
func (s *Stack) Push(name string, fn func() error) {
	s.steps = append(s.steps, Step{Name: name, Fn: fn})
}

// Len reports how many steps are pending.
func (s *Stack) Len() int { return len(s.steps) }

// Rollback runs every pending step, last pushed first, and empties the stack.
// It returns the joined errors of the steps that failed, each prefixed with
// the step's name.
func (s *Stack) Rollback() error {
	var errs []error
	for i := len(s.steps) - 1; i >= 0; i-- {
		step := s.steps[i]
		if err := step.Fn(); err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", step.Name, err))
		}
	}
	s.steps = nil
	return errors.Join(errs...)
}

// Commit drops the pending steps: the operation succeeded.
func (s *Stack) Commit() { s.steps = nil }
