package record

// Record is a shipped record decoded, for readers of CloudWatch events:
// logship query, the demo and the tests. The Encoder writes the same shape
// without going through this type.
type Record struct {
	Log        string     `json:"log"`
	Stream     string     `json:"stream"`
	Time       string     `json:"time"`
	Kubernetes Kubernetes `json:"kubernetes"`
}
