// Package fleettest runs a fleet of pmta-agents through the OpenTelemetry
// Collector gateway of deploy/otelcol/gateway.yaml into a real
// VictoriaMetrics, and checks that what every simulated PowerMTA wrote
// arrives exactly once, across a SIGKILL of the gateway.
//
// Everything is a real process: 20 pmta-sim simulators writing accounting
// files, 20 pmta-agent processes tailing them (built from this module), the
// collector built by testdata/otelcol/build.sh (started with the gateway
// file itself, pointed at loopback ports and temporary directories through
// its PMTA_GATEWAY_* variables), and victoria-metrics. The expected totals
// per (server, type, isp) are counted from the accounting files on disk,
// independently of the agent. The agents export with temporality:
// cumulative, as the gateway file asks of them, so each series' last sample
// is its total and a batch the gateway delivers twice after the SIGKILL
// (it does: at least once) counts once.
//
// The store is VictoriaMetrics rather than InfluxDB because the collector's
// influxdb exporter cannot be built here (the module proxy does not serve
// it), and the prometheusremotewrite exporter has no persistent sending
// queue: the gateway exports OTLP/HTTP, which VictoriaMetrics ingests
// natively. The binary is found in $VICTORIA_METRICS, in
// $(go env GOPATH)/bin or on $PATH; .ci/run installs it with
// `go install github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@v1.151.0`
// (Debian's package is too old to ingest OTLP). Without the collector or
// VictoriaMetrics the test is skipped locally and fails when CI=true.
//
// PMTA_FLEET_SECONDS sets how long the simulators write (default 40).
package fleettest
