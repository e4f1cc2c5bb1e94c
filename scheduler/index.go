package scheduler

import (
	"math"
	"math/bits"
)

// gridSize is the number of free-capacity buckets per resource. 64 fits one
// row of buckets in a uint64 mask.
const gridSize = 64

// freeIndex buckets schedulable nodes by their free (unrequested) CPU and
// memory, on an absolute scale (the largest capacity in the cluster), so that
// a task's search starts at the buckets that can hold it and walks towards
// emptier ones: best fit first, and the cost per placement does not grow with
// the number of nodes.
type freeIndex struct {
	scale   Resources
	buckets [gridSize * gridSize][]int32
	rowMask [gridSize]uint64
	count   int
}

func (x *freeIndex) coord(free Resources) (int, int) {
	return x.cell(free[CPU], CPU), x.cell(free[Memory], Memory)
}

func (x *freeIndex) cell(v float64, r Resource) int {
	c := int(v / x.scale[r] * gridSize)
	if c < 0 {
		return 0
	}
	if c >= gridSize {
		return gridSize - 1
	}
	return c
}

func (x *freeIndex) insert(s *State, n int32) {
	ns := &s.nodes[n]
	i, j := x.coord(ns.Capacity.Sub(ns.alloc))
	b := i*gridSize + j
	ns.bucket = int32(b)
	ns.pos = int32(len(x.buckets[b]))
	x.buckets[b] = append(x.buckets[b], n)
	x.rowMask[i] |= 1 << uint(j)
	x.count++
}

func (x *freeIndex) remove(s *State, n int32) {
	ns := &s.nodes[n]
	if ns.bucket < 0 {
		return
	}
	b := ns.bucket
	l := x.buckets[b]
	last := l[len(l)-1]
	l[ns.pos] = last
	s.nodes[last].pos = ns.pos
	x.buckets[b] = l[:len(l)-1]
	if len(x.buckets[b]) == 0 {
		x.rowMask[int(b)/gridSize] &^= 1 << uint(int(b)%gridSize)
	}
	ns.bucket, ns.pos = -1, -1
	x.count--
}

// update moves node n to the bucket of its current free capacity.
func (x *freeIndex) update(s *State, n int32) {
	ns := &s.nodes[n]
	if ns.bucket < 0 {
		return
	}
	i, j := x.coord(ns.Capacity.Sub(ns.alloc))
	if int32(i*gridSize+j) == ns.bucket {
		return
	}
	x.remove(s, n)
	x.insert(s, n)
}

// walk visits the buckets that may hold demand d, tightest fit first, calling
// visit with each bucket's nodes (and whether the bucket is on the demand's
// boundary, where nodes may lack room) until visit returns false. "Tightest" is
// the dot product of the demand's shape with the bucket's free capacity
// (Panigrahy et al., "Heuristics for vector bin packing", 2011): a
// CPU-heavy task looks first where little CPU is left, whatever the memory.
func (x *freeIndex) walk(d, w Resources, visit func(nodes []int32, boundary bool) bool) {
	ci, cj := x.coord(d)
	wi, wj := w[CPU], w[Memory]
	if s := wi + wj; s > 0 {
		wi, wj = wi/s+1e-3, wj/s+1e-3
	} else {
		wi, wj = 1, 1
	}
	// cursor[i] is the next non-empty column ≥ cj in row i, or gridSize.
	var cursor [gridSize]int
	for i := ci; i < gridSize; i++ {
		cursor[i] = nextCol(x.rowMask[i], cj)
	}
	for {
		best, bestKey := -1, math.Inf(1)
		for i := ci; i < gridSize; i++ {
			if c := cursor[i]; c < gridSize {
				if k := wi*float64(i) + wj*float64(c); k < bestKey {
					best, bestKey = i, k
				}
			}
		}
		if best < 0 {
			return
		}
		j := cursor[best]
		cursor[best] = nextCol(x.rowMask[best], j+1)
		// A boundary bucket (in the demand's own row or column) holds nodes
		// with a little less and a little more room than the demand.
		if !visit(x.buckets[best*gridSize+j], best == ci || j == cj) {
			return
		}
	}
}

func nextCol(mask uint64, from int) int {
	if from >= gridSize {
		return gridSize
	}
	m := mask & (^uint64(0) << uint(from))
	if m == 0 {
		return gridSize
	}
	return bits.TrailingZeros64(m)
}
