package wire

// keySamples are the samples of the key requests (samples_test.go).
var keySamples = map[Type]any{
	TypeDeleteKey: &DeleteKey{Serial: "TC-0001", ID: []byte{0x01, 0x02}},
}

// The key requests' numbers are pinned beside the others
// (messages_test.go).
func init() {
	typeGolden = append(typeGolden, []struct {
		t     Type
		num   uint8
		name  string
		reply Type
	}{
		{TypeDeleteKey, 0x2b, "DeleteKey", TypeAck},
	}...)
}
