// Package deploytest proves that the deployable assets in deploy/ work
// against real data: it runs the real pmta-agent binary against the PowerMTA
// simulator into a real InfluxDB, then executes every query found in the
// Grafana dashboards and alert rules — read from the files themselves, never
// copied — and evaluates the alert rules' server-side expressions the way
// Grafana does, in a normal state and in the alerting one. The simulators'
// states are chosen so that the agent's own analyses — the IP vs pool
// verdicts, and `pmta-agent impact` on a change in deferrals — have their
// answers known in advance, and the tests check those answers too.
//
// The package holds only tests; this file exists for the package comment.
package deploytest
