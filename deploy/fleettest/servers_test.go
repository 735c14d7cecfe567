package fleettest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pmta-agent/pmta-agent/internal/servertest"
	"github.com/pmta-agent/pmta-agent/sinks/otlp/otelcoltest"
)

// gatewayConfig is the file under test, used as it is.
const gatewayConfig = "../otelcol/gateway.yaml"

// victoriaVersion is what .ci/run installs.
const victoriaVersion = "v1.151.0"

// victoriaBinary returns a victoria-metrics that ingests OTLP: $VICTORIA_METRICS,
// else $(go env GOPATH)/bin/victoria-metrics, else one on $PATH. It returns
// an error saying how to get one when there is none.
func victoriaBinary() (string, error) {
	install := "go install github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@" + victoriaVersion
	var candidates []string
	if p := os.Getenv("VICTORIA_METRICS"); p != "" {
		candidates = append(candidates, p)
	} else {
		gopath := os.Getenv("GOPATH")
		if gopath == "" {
			if home, err := os.UserHomeDir(); err == nil {
				gopath = filepath.Join(home, "go")
			}
		}
		candidates = append(candidates, filepath.Join(gopath, "bin", "victoria-metrics"))
		if p, err := exec.LookPath("victoria-metrics"); err == nil {
			candidates = append(candidates, p)
		}
	}
	for _, p := range candidates {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			continue
		}
		// Debian's 1.79 has no OTLP ingestion: look for its flags.
		out, _ := exec.Command(p, "-help").CombinedOutput()
		if !strings.Contains(string(out), "-opentelemetry.") {
			return "", fmt.Errorf("%s cannot ingest OTLP (too old); set VICTORIA_METRICS or run: %s", p, install)
		}
		return p, nil
	}
	return "", fmt.Errorf("victoria-metrics not found (set VICTORIA_METRICS or run: %s)", install)
}

// victoria is a running VictoriaMetrics single node with Basic auth, so that
// the gateway's credentials are exercised.
type victoria struct {
	url  string
	auth string // Authorization header value
	proc *proc
}

func startVictoria(t testing.TB, bin, dir string) *victoria {
	t.Helper()
	port := servertest.FreePort(t)
	v := &victoria{
		url:  fmt.Sprintf("http://127.0.0.1:%d", port),
		auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("fleet:s3cret")),
	}
	v.proc = newProc("victoria-metrics", filepath.Join(dir, "victoria-metrics.log"), nil, bin,
		"-storageDataPath="+filepath.Join(dir, "data"),
		fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", port),
		"-httpAuth.username=fleet", "-httpAuth.password=s3cret",
		"-retentionPeriod=1d",
		"-search.latencyOffset=0s", // a sample is visible as soon as it is flushed
		"-search.disableCache",
		"-loggerLevel=WARN")
	v.proc.start(t, nil)
	t.Cleanup(func() { _ = v.proc.stop(10 * time.Second) })
	v.proc.waitReady(t, 30*time.Second, func() bool { return httpOK(v.url + "/health") })
	return v
}

// get runs an authenticated GET of path with query q and returns the body.
func (v *victoria) get(path string, q url.Values) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", v.auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s: %.300s", path, resp.Status, body)
	}
	return body, nil
}

// flush makes everything ingested so far searchable.
func (v *victoria) flush() error {
	_, err := v.get("/internal/force_flush", nil)
	return err
}

// exported is one series of /api/v1/export.
type exported struct {
	Metric     map[string]string `json:"metric"`
	Values     []float64         `json:"values"`
	Timestamps []int64           `json:"timestamps"`
}

// export returns the raw samples of the series that match.
func (v *victoria) export(match string) ([]exported, error) {
	if err := v.flush(); err != nil {
		return nil, err
	}
	body, err := v.get("/api/v1/export", url.Values{"match[]": {match}})
	if err != nil {
		return nil, err
	}
	var out []exported
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var s exported
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// instantVector is the result of an instant MetricsQL query.
type instantVector []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant MetricsQL query now.
func (v *victoria) query(q string) (instantVector, error) {
	body, err := v.get("/api/v1/query", url.Values{"query": {q}, "nocache": {"1"}})
	if err != nil {
		return nil, err
	}
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result instantVector `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	return out.Data.Result, nil
}

// seriesCount is the number of series the store holds.
func (v *victoria) seriesCount() (int64, error) {
	body, err := v.get("/api/v1/series/count", nil)
	if err != nil {
		return 0, err
	}
	var out struct {
		Data []int64 `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Data) != 1 {
		return 0, fmt.Errorf("series count: %.200s", body)
	}
	return out.Data[0], nil
}

// gateway is the collector running deploy/otelcol/gateway.yaml.
type gateway struct {
	grpcEndpoint string
	health       string // health_check URL
	telemetry    string // the collector's own /metrics
	proc         *proc
}

func startGateway(t testing.TB, bin, dir string, store *victoria) *gateway {
	t.Helper()
	conf, err := filepath.Abs(gatewayConfig)
	if err != nil {
		t.Fatal(err)
	}
	grpcPort, httpPort, healthPort, telPort := servertest.FreePort(t), servertest.FreePort(t), servertest.FreePort(t), servertest.FreePort(t)
	g := &gateway{
		grpcEndpoint: fmt.Sprintf("127.0.0.1:%d", grpcPort),
		health:       fmt.Sprintf("http://127.0.0.1:%d/", healthPort),
		telemetry:    fmt.Sprintf("http://127.0.0.1:%d/metrics", telPort),
	}
	env := []string{
		"PMTA_GATEWAY_OTLP_GRPC_ENDPOINT=" + g.grpcEndpoint,
		fmt.Sprintf("PMTA_GATEWAY_OTLP_HTTP_ENDPOINT=127.0.0.1:%d", httpPort),
		fmt.Sprintf("PMTA_GATEWAY_HEALTH_ENDPOINT=127.0.0.1:%d", healthPort),
		"PMTA_GATEWAY_TELEMETRY_HOST=127.0.0.1",
		"PMTA_GATEWAY_TELEMETRY_PORT=" + strconv.Itoa(telPort),
		"PMTA_GATEWAY_QUEUE_DIR=" + filepath.Join(dir, "queue"),
		"PMTA_GATEWAY_STORE_URL=" + store.url + "/opentelemetry/v1/metrics",
		"PMTA_GATEWAY_STORE_AUTHORIZATION=" + store.auth,
		"PMTA_GATEWAY_LOG_LEVEL=warn",
	}
	g.proc = newProc("gateway", filepath.Join(dir, "gateway.log"), env, bin, "--config", conf)
	g.start(t)
	t.Cleanup(func() { _ = g.proc.stop(15 * time.Second) })
	return g
}

// start runs the gateway and waits for its health check.
func (g *gateway) start(t testing.TB) {
	t.Helper()
	g.proc.start(t, nil)
	g.proc.waitReady(t, 60*time.Second, func() bool { return httpOK(g.health) })
}

// metrics scrapes the gateway's own metrics.
func (g *gateway) metrics() ([]byte, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(g.telemetry)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// collectorBinary is the collector that testdata/otelcol/build.sh builds.
func collectorBinary(t testing.TB) string {
	t.Helper()
	bin, err := otelcoltest.Binary()
	if err != nil {
		servertest.Missing(t, err.Error())
	}
	return bin
}
