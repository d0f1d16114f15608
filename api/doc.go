// Package api owns the HTTP surface of the online service: the fiber app,
// the JSON request and response bodies and their strict decoding, the one
// function that maps errors to status codes, the middleware (request id,
// per-request deadline, panic recovery, access log, metrics), the health and
// readiness probes and the OpenAPI description served at /openapi.yaml.
//
// The package depends on small interfaces it declares itself (Engine,
// Publisher, Check) so the engine and the Kafka producer are plugged in by
// cmd/ and replaced by fakes in tests.
package api
