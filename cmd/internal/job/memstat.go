package job

import (
	"bytes"
	"log/slog"
	"os"
	"runtime"
)

// memStats reads the process's resident set (now and peak, KiB, from
// /proc/self/status) and the Go heap in use, for the run's log.
func memStats() (rssKiB, hwmKiB int64, heapMiB uint64) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		var n int64
		for _, c := range f[1] {
			n = n*10 + int64(c-'0')
		}
		switch string(f[0]) {
		case "VmRSS:":
			rssKiB = n
		case "VmHWM:":
			hwmKiB = n
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return rssKiB, hwmKiB, ms.HeapInuse >> 20
}

// logMem logs the process's memory at the end of a phase (debug level).
func logMem(log *slog.Logger, phase string) {
	rss, hwm, heap := memStats()
	log.Debug("memory", "phase", phase, "rss_mib", rss>>10, "peak_rss_mib", hwm>>10, "go_heap_mib", heap)
}
