package controller

import "errors"

// Errors of requests the controller refuses. Each is wrapped with a message
// a person can act on; check with errors.Is.
var (
	// ErrNameTaken: an active job already holds the name in the namespace.
	ErrNameTaken = errors.New("job name already in use in this namespace")
	// ErrIDTaken: the job id exists (a random-id collision; pick another).
	ErrIDTaken = errors.New("job id already exists")
	// ErrJobNotFound and ErrNodeNotFound: no such job or node.
	ErrJobNotFound  = errors.New("job not found")
	ErrNodeNotFound = errors.New("node not found")
	// ErrConflict: the request does not fit the job's state (an update of a
	// stopped job, a promote without canaries waiting).
	ErrConflict = errors.New("not possible in the job's current state")
)
