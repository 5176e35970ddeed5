// Package backend opens the TPM that one value names and reports what it can do.
//
// A backend is chosen with a single string, the value of the --tpm flag:
//
//	device              the TPM of this computer: /dev/tpmrm0 on Linux, TBS on Windows
//	device:/dev/tpm0    a TPM character device at another path
//	swtpm               a software TPM at 127.0.0.1:2321 (swtpm or the reference simulator)
//	swtpm:PORT          the same on 127.0.0.1:PORT
//	swtpm:HOST:PORT     the same on HOST:PORT
//	sim                 the in-process reference simulator (needs cgo)
//
// Only device keeps keys hardware-protected; swtpm and sim are software, see
// [Spec.HardwareProtected].
//
// The swtpm backend speaks the TCP protocol of the TPM 2.0 reference
// simulator: TPM commands on PORT and the platform channel on PORT+1. [Open]
// sends TPM2_Startup(CLEAR) (TPM 2.0 Part 3 §9.3) and accepts
// TPM_RC_INITIALIZE, the answer of a TPM that is already started.
//
// The in-process simulator is a process-wide singleton: one open at a time,
// and every open starts from a freshly manufactured TPM, so nothing survives
// Close. A second [Open] while one is open fails with [ErrSimBusy].
//
// [Probe] asks the TPM for its properties, ECC curves and algorithms with
// TPM2_GetCapability (Part 3 §30.2; properties in Part 2 §6.13) and checks RSA
// key sizes with TPM2_TestParms (Part 3 §30.3).
package backend
