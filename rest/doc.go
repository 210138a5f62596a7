// Package rest is the HTTP API on every node's HTTP listener: the parts
// of Confluent's REST Proxy v2 API that existing clients speak (topics,
// partitions and brokers as JSON; producing records as JSON or base64
// binary), served through a Kafka client of the node's own listener, so
// that any node answers any request and the cluster routes it (a record
// goes to its partition's leader wherever that is).
//
// Content types are REST Proxy's: requests with
// application/vnd.kafka.json.v2+json or application/vnd.kafka.binary.v2+json
// (application/json is taken as the JSON format), answers with
// application/vnd.kafka.v2+json, errors as {"error_code": …, "message": …}
// with REST Proxy's codes (40401 topic not found, 40402 partition not
// found, 42201/42202 bad records, 415 unsupported content type, 413 too
// large, 50002 Kafka error).
//
// When the Kafka listener requires SASL, a request must carry HTTP basic
// credentials of a SCRAM user; the proxy logs in to Kafka as that user, so
// the same ACLs apply as to a Kafka client.
package rest
