// Package transport holds what the agent's HTTP and gRPC clients share: the
// TLS settings of the configuration (verification on unless turned off
// explicitly), the one HTTP transport builder, and the reading of a
// Retry-After header.
package transport
