// Package worlds describes the worlds built on the simulated internet
// (scanner/scantest): the demo world `tlsready demo` scans, with the verdict
// docs/verdicts.md gives each of its domains; the generated worlds of the
// benchmarks (Generate, from 1,000 to 1,000,000 domains of providers, shared
// hosting and a long tail of self-hosted domains); and each generated
// domain's critical path of round trips (WorldPlan.ScanChain), from which
// the benchmarks' latency bound is derived.
//
// It knows what each world should look like to a sender, and nothing of how
// the scanner finds out: its tests check the worlds with a small independent
// checker (world_test.go), not with the scanner.
package worlds
