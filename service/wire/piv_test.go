package wire

// pivSamples are the samples of the PIV requests (samples_test.go).
var pivSamples = map[Type]any{
	TypePIVEnable:  &PIVEnable{Serial: "TC-0001", Port: 35963, AnyLocalUser: true},
	TypePIVDisable: &PIVDisable{Serial: "TC-0001"},
	TypePIVAssign:  &PIVAssign{Serial: "TC-0001", Slot: 0x9a, KeyID: []byte{0x01, 0x02}},
	TypePIVStatus:  &PIVStatus{},
	TypePIVCards: &PIVCards{Cards: []PIVCard{{Serial: "TC-0001", Port: 35963, Connected: true,
		Slots: []PIVSlot{{Slot: 0x9a, KeyID: []byte{0x01, 0x02}}}}}},
}

// The PIV requests' numbers are pinned beside the others
// (messages_test.go); PIVEnable's reply answers all four.
func init() {
	typeGolden = append(typeGolden, []struct {
		t     Type
		num   uint8
		name  string
		reply Type
	}{
		{TypePIVEnable, 0x50, "PIVEnable", TypePIVCards},
		{TypePIVDisable, 0x51, "PIVDisable", TypePIVCards},
		{TypePIVAssign, 0x52, "PIVAssign", TypePIVCards},
		{TypePIVStatus, 0x53, "PIVStatus", TypePIVCards},
		{TypePIVCards, 0xd0, "PIVCards", 0},
	}...)
	sharedReplies[TypePIVDisable] = true
	sharedReplies[TypePIVAssign] = true
	sharedReplies[TypePIVStatus] = true
}
