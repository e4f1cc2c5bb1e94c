// Package burn is Fathom's workload generator: real CPU burned by duty
// cycling busy loops, and real memory mapped and touched page by page, in a
// shape over time (steady, sine, spiky, leak). `fathom burn` runs it so that
// every test and demo has controllable, measurable usage.
package burn
