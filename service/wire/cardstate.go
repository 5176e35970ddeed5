package wire

import "strconv"

// CardState says whether a card can be used, and if not why. The numbers
// are part of the protocol, like Status's.
type CardState uint8

const (
	CardReady                  CardState = 0 // its TPM objects match its record
	CardStateLost              CardState = 1 // its TPM objects are gone: destroy it
	CardStateAltered           CardState = 2 // its TPM objects were changed behind the service: destroy it
	CardStateOutdated          CardState = 3 // made by an earlier tpmcard: destroy it
	CardStateDestroyIncomplete CardState = 4 // a destroy did not finish: destroy it again
	CardStateUnknown           CardState = 5 // the TPM did not answer (busy, unreachable): ask again
)

var cardStateNames = map[CardState]string{
	CardReady:                  "ready",
	CardStateLost:              "lost",
	CardStateAltered:           "altered",
	CardStateOutdated:          "outdated",
	CardStateDestroyIncomplete: "destroy incomplete",
	CardStateUnknown:           "unknown",
}

// String is the state as card list shows it: "ready", "lost", "altered",
// "outdated", "destroy incomplete", "unknown".
func (s CardState) String() string {
	if n, ok := cardStateNames[s]; ok {
		return n
	}
	return "state " + strconv.Itoa(int(s))
}

// Damaged reports a card that cannot be used until something is done.
func (s CardState) Damaged() bool { return s != CardReady }
