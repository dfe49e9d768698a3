package bench

import (
	"fmt"
	"sort"
	"time"
)

// Sample is a set of durations.
type Sample []time.Duration

// Quantile returns the q-quantile (0..1), nearest rank.
func (s Sample) Quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	sorted := append(Sample(nil), s...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	idx := int(q*float64(len(sorted))+0.5) - 1
	idx = max(0, min(idx, len(sorted)-1))
	return sorted[idx]
}

// P50 is the median.
func (s Sample) P50() time.Duration { return s.Quantile(0.50) }

// P90 is the 90th percentile.
func (s Sample) P90() time.Duration { return s.Quantile(0.90) }

// P99 is the 99th percentile.
func (s Sample) P99() time.Duration { return s.Quantile(0.99) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}
