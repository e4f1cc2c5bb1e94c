// Package jobspec parses and validates Fathom job specs (YAML or JSON, see
// ARCHITECTURE.md) into the wire type fathomv1.JobSpec. Unknown fields, wrong
// types and out-of-range values are reported as a *FieldError that names the
// field (for example "task.resources.memory") and says what is allowed, so a
// person can fix the spec from the message alone. It does no I/O.
package jobspec
