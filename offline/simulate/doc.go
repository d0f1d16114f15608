// Package simulate drives a running server with the synthetic world's users:
// each session searches with a query the user would type, then asks for
// recommendations seeded by what it clicked; clicks and purchases are drawn
// from the world's hidden click model and posted to the feedback endpoint,
// exactly as a client would. It measures what the ranker achieved against
// the hidden utility the service never sees, which is what makes
// train -> promote -> serve measurable end to end.
package simulate
