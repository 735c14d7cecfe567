package otelcoltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Point is one data point as the collector wrote it, flattened with its
// metric, scope and resource.
type Point struct {
	Resource map[string]string // resource attributes, as strings
	Scope    string            // instrumentation scope name
	Name     string
	Unit     string
	// Type is "gauge" or "sum".
	Type string
	// Temporality is "delta" or "cumulative" for sums, "" for gauges.
	Temporality string
	Monotonic   bool
	Attributes  map[string]string
	Start       time.Time // zero when the data point has no start time
	Time        time.Time
	// Int holds an int data point, Float a double one (IsFloat).
	Int     int64
	Float   float64
	IsFloat bool
}

// Value returns the value as float64, whatever its type.
func (p Point) Value() float64 {
	if p.IsFloat {
		return p.Float
	}
	return float64(p.Int)
}

// The OTLP JSON encoding (proto3 JSON as the collector's pdata writes it):
// 64-bit integers are strings, enums numbers.
type jsonFile struct {
	ResourceMetrics []struct {
		Resource struct {
			Attributes []jsonKV `json:"attributes"`
		} `json:"resource"`
		ScopeMetrics []struct {
			Scope struct {
				Name string `json:"name"`
			} `json:"scope"`
			Metrics []struct {
				Name  string `json:"name"`
				Unit  string `json:"unit"`
				Gauge *struct {
					DataPoints []jsonDP `json:"dataPoints"`
				} `json:"gauge"`
				Sum *struct {
					DataPoints             []jsonDP `json:"dataPoints"`
					AggregationTemporality int      `json:"aggregationTemporality"`
					IsMonotonic            bool     `json:"isMonotonic"`
				} `json:"sum"`
			} `json:"metrics"`
		} `json:"scopeMetrics"`
	} `json:"resourceMetrics"`
}

type jsonKV struct {
	Key   string `json:"key"`
	Value struct {
		StringValue *string         `json:"stringValue"`
		IntValue    json.RawMessage `json:"intValue"`
		DoubleValue *float64        `json:"doubleValue"`
		BoolValue   *bool           `json:"boolValue"`
	} `json:"value"`
}

type jsonDP struct {
	Attributes        []jsonKV        `json:"attributes"`
	StartTimeUnixNano string          `json:"startTimeUnixNano"`
	TimeUnixNano      string          `json:"timeUnixNano"`
	AsInt             json.RawMessage `json:"asInt"`
	AsDouble          *float64        `json:"asDouble"`
}

// ParseFile reads the file exporter's output: one OTLP JSON document per
// line. A last line without its newline is still being written and is left
// for the next read.
func ParseFile(data []byte) ([]Point, error) {
	var out []Point
	for n := 1; len(data) > 0; n++ {
		line, rest, complete := bytes.Cut(data, []byte("\n"))
		data = rest
		if !complete {
			break
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		pts, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, pts...)
	}
	return out, nil
}

func parseLine(line []byte) ([]Point, error) {
	var f jsonFile
	if err := json.Unmarshal(line, &f); err != nil {
		return nil, err
	}
	var out []Point
	for _, rm := range f.ResourceMetrics {
		res, err := kvMap(rm.Resource.Attributes)
		if err != nil {
			return nil, err
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				base := Point{Resource: res, Scope: sm.Scope.Name, Name: m.Name, Unit: m.Unit}
				var dps []jsonDP
				switch {
				case m.Gauge != nil:
					base.Type, dps = "gauge", m.Gauge.DataPoints
				case m.Sum != nil:
					base.Type, dps, base.Monotonic = "sum", m.Sum.DataPoints, m.Sum.IsMonotonic
					switch m.Sum.AggregationTemporality {
					case 1:
						base.Temporality = "delta"
					case 2:
						base.Temporality = "cumulative"
					default:
						base.Temporality = "unspecified"
					}
				default:
					return nil, fmt.Errorf("metric %s: neither gauge nor sum", m.Name)
				}
				for _, dp := range dps {
					p, err := dataPoint(base, dp)
					if err != nil {
						return nil, fmt.Errorf("metric %s: %w", m.Name, err)
					}
					out = append(out, p)
				}
			}
		}
	}
	return out, nil
}

func dataPoint(p Point, dp jsonDP) (Point, error) {
	var err error
	if p.Attributes, err = kvMap(dp.Attributes); err != nil {
		return p, err
	}
	if p.Start, err = unixNano(dp.StartTimeUnixNano); err != nil {
		return p, err
	}
	if p.Time, err = unixNano(dp.TimeUnixNano); err != nil {
		return p, err
	}
	switch {
	case dp.AsDouble != nil:
		p.Float, p.IsFloat = *dp.AsDouble, true
	case dp.AsInt != nil:
		if p.Int, err = jsonInt(dp.AsInt); err != nil {
			return p, fmt.Errorf("asInt: %w", err)
		}
	}
	// A zero value is left out of the JSON: Int 0 it is.
	return p, nil
}

// unixNano reads a decimal string of nanoseconds; "" or "0" is no time.
func unixNano(s string) (time.Time, error) {
	if s == "" || s == "0" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	return time.Unix(0, n), nil
}

// jsonInt reads a 64-bit integer written as a string or a number.
func jsonInt(raw json.RawMessage) (int64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return strconv.ParseInt(s, 10, 64)
	}
	var n int64
	err := json.Unmarshal(raw, &n)
	return n, err
}

func kvMap(kvs []jsonKV) (map[string]string, error) {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.Value
		switch {
		case v.StringValue != nil:
			m[kv.Key] = *v.StringValue
		case v.IntValue != nil:
			n, err := jsonInt(v.IntValue)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %w", kv.Key, err)
			}
			m[kv.Key] = strconv.FormatInt(n, 10)
		case v.DoubleValue != nil:
			m[kv.Key] = strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64)
		case v.BoolValue != nil:
			m[kv.Key] = strconv.FormatBool(*v.BoolValue)
		default:
			m[kv.Key] = ""
		}
	}
	return m, nil
}
