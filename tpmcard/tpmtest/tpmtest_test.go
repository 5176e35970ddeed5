package tpmtest

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/tpmcard/tpmcard/tpmcard/backend"
)

const testIndex = tpm2.TPMHandle(0x01500010)

// defineAndWrite defines an 8-byte owner NV index at testIndex and writes data.
func defineAndWrite(t *testing.T, tpm transport.TPM, data []byte) {
	t.Helper()
	_, err := tpm2.NVDefineSpace{
		AuthHandle: tpm2.TPMRHOwner,
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
			NVIndex: testIndex,
			NameAlg: tpm2.TPMAlgSHA256,
			Attributes: tpm2.TPMANV{
				OwnerWrite: true, OwnerRead: true, NoDA: true, NT: tpm2.TPMNTOrdinary,
			},
			DataSize: uint16(len(data)),
		}),
	}.Execute(tpm)
	if err != nil {
		t.Fatalf("NV_DefineSpace: %v", err)
	}
	_, err = tpm2.NVWrite{
		AuthHandle: tpm2.TPMRHOwner,
		NVIndex:    tpm2.NamedHandle{Handle: testIndex, Name: nvName(t, tpm)},
		Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data},
	}.Execute(tpm)
	if err != nil {
		t.Fatalf("NV_Write: %v", err)
	}
}

func nvName(t *testing.T, tpm transport.TPM) tpm2.TPM2BName {
	t.Helper()
	pub, err := tpm2.NVReadPublic{NVIndex: testIndex}.Execute(tpm)
	if err != nil {
		t.Fatalf("NV_ReadPublic: %v", err)
	}
	return pub.NVName
}

func readNV(t *testing.T, tpm transport.TPM, size uint16) []byte {
	t.Helper()
	rsp, err := tpm2.NVRead{
		AuthHandle: tpm2.TPMRHOwner,
		NVIndex:    tpm2.NamedHandle{Handle: testIndex, Name: nvName(t, tpm)},
		Size:       size,
	}.Execute(tpm)
	if err != nil {
		t.Fatalf("NV_Read: %v", err)
	}
	return rsp.Data.Buffer
}

func readClock(t *testing.T, tpm transport.TPM) tpm2.TPMSClockInfo {
	t.Helper()
	rsp, err := tpm2.ReadClock{}.Execute(tpm)
	if err != nil {
		t.Fatalf("ReadClock: %v", err)
	}
	return rsp.CurrentTime.ClockInfo
}

func lockoutCounter(t *testing.T, tpm transport.TPM) uint32 {
	t.Helper()
	rsp, err := tpm2.GetCapability{
		Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTLockoutCounter), PropertyCount: 1,
	}.Execute(tpm)
	if err != nil {
		t.Fatalf("GetCapability: %v", err)
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil || len(props.TPMProperty) == 0 || props.TPMProperty[0].Property != tpm2.TPMPTLockoutCounter {
		t.Fatalf("TPM_PT_LOCKOUT_COUNTER not reported: %v", err)
	}
	return props.TPMProperty[0].Value
}

// srkPublic creates the ECC SRK and returns its public point.
func srkPublic(t *testing.T, tpm transport.TPM) []byte {
	t.Helper()
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(tpm)
	if err != nil {
		t.Fatalf("CreatePrimary: %v", err)
	}
	defer tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(tpm)
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	ecc, err := pub.Unique.ECC()
	if err != nil {
		t.Fatal(err)
	}
	return append(append([]byte(nil), ecc.X.Buffer...), ecc.Y.Buffer...)
}

func getRandom(t *testing.T, tpm transport.TPM) {
	t.Helper()
	rsp, err := tpm2.GetRandom{BytesRequested: 16}.Execute(tpm)
	if err != nil {
		t.Fatalf("GetRandom: %v", err)
	}
	if len(rsp.RandomBytes.Buffer) != 16 {
		t.Fatalf("GetRandom returned %d bytes, want 16", len(rsp.RandomBytes.Buffer))
	}
}

func TestSim(t *testing.T) {
	getRandom(t, Sim(t))
}

func TestSimFreshEachOpen(t *testing.T) {
	var first []byte
	t.Run("define", func(t *testing.T) {
		tpm := Sim(t)
		defineAndWrite(t, tpm, []byte("12345678"))
		first = srkPublic(t, tpm)
	})
	t.Run("reopen", func(t *testing.T) {
		tpm := Sim(t)
		_, err := tpm2.NVReadPublic{NVIndex: testIndex}.Execute(tpm)
		if !errors.Is(err, tpm2.TPMRCHandle) {
			t.Errorf("NV index after reopen: got %v, want TPM_RC_HANDLE (the simulator is remanufactured)", err)
		}
		if first != nil && bytes.Equal(first, srkPublic(t, tpm)) {
			t.Errorf("SRK repeats across opens without a fixed seed")
		}
	})
}

func TestSimFixedSeed(t *testing.T) {
	srk := func(seed int64) []byte {
		var pub []byte
		t.Run("", func(t *testing.T) { pub = srkPublic(t, SimFixedSeed(t, seed)) })
		return pub
	}
	a1, a2, b := srk(1), srk(1), srk(2)
	if a1 == nil {
		t.Skip("simulator unavailable")
	}
	if !bytes.Equal(a1, a2) {
		t.Errorf("same seed, different SRKs:\n%x\n%x", a1, a2)
	}
	if bytes.Equal(a1, b) {
		t.Errorf("seeds 1 and 2 give the same SRK %x", a1)
	}
}

// failDAAuth makes one authorization fail against the dictionary-attack
// counter: a wrong password for an NV index without NO_DA.
func failDAAuth(t *testing.T, tpm transport.TPM) {
	t.Helper()
	const idx = testIndex + 1
	_, err := tpm2.NVDefineSpace{
		AuthHandle: tpm2.TPMRHOwner,
		Auth:       tpm2.TPM2BAuth{Buffer: []byte("right")},
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
			NVIndex:    idx,
			NameAlg:    tpm2.TPMAlgSHA256,
			Attributes: tpm2.TPMANV{AuthWrite: true, AuthRead: true, NT: tpm2.TPMNTOrdinary},
			DataSize:   8,
		}),
	}.Execute(tpm)
	if err != nil {
		t.Fatalf("NV_DefineSpace: %v", err)
	}
	pub, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(tpm)
	if err != nil {
		t.Fatalf("NV_ReadPublic: %v", err)
	}
	// swtpm answers the first DA-protected authorization with TPM_RC_RETRY
	// while it records in NV that DA is in use.
	for try := 0; ; try++ {
		_, err = tpm2.NVWrite{
			AuthHandle: tpm2.AuthHandle{Handle: idx, Name: pub.NVName, Auth: tpm2.PasswordAuth([]byte("wrong"))},
			NVIndex:    tpm2.NamedHandle{Handle: idx, Name: pub.NVName},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: make([]byte, 8)},
		}.Execute(tpm)
		if !errors.Is(err, tpm2.TPMRCRetry) || try == 3 {
			break
		}
	}
	if !errors.Is(err, tpm2.TPMRCAuthFail) {
		t.Fatalf("NV_Write with a wrong password: got %v, want TPM_RC_AUTH_FAIL", err)
	}
}

func TestSWTPMRestartKeepsNV(t *testing.T) {
	s := StartSWTPM(t)
	addr := s.Addr()
	if s.Spec() != "swtpm:"+addr {
		t.Errorf("Spec() = %q, want swtpm:%s", s.Spec(), addr)
	}
	tpm := s.TPM()
	data := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	defineAndWrite(t, tpm, data)
	failDAAuth(t, tpm)
	before := readClock(t, tpm)
	lockout := lockoutCounter(t, tpm)
	if lockout != 1 {
		t.Errorf("lockout counter after one failed authorization = %d, want 1", lockout)
	}
	if err := tpm.Close(); err != nil {
		t.Fatal(err)
	}

	s.Restart(t)
	if s.Addr() != addr {
		t.Logf("address changed at restart: %s -> %s", addr, s.Addr())
	}
	tpm = s.TPM()
	if got := readNV(t, tpm, 8); !bytes.Equal(got, data) {
		t.Errorf("NV after restart = %x, want %x", got, data)
	}
	after := readClock(t, tpm)
	if after.ResetCount != before.ResetCount+1 {
		t.Errorf("resetCount %d -> %d, want one TPM Reset", before.ResetCount, after.ResetCount)
	}
	// A power loss after DA use would count one more failure and clear Safe.
	if !after.Safe {
		t.Errorf("clock not safe after restart: the shutdown was not orderly")
	}
	if got := lockoutCounter(t, tpm); got != lockout {
		t.Errorf("lockout counter %d -> %d across restart, want unchanged", lockout, got)
	}
	getRandom(t, tpm)
}

func TestSWTPMIndependent(t *testing.T) {
	s := StartSWTPM(t)
	one := s.TPM()
	two := SecondTPM(t)
	defineAndWrite(t, one, []byte("abcdefgh"))
	if _, err := (tpm2.NVReadPublic{NVIndex: testIndex}).Execute(two); !errors.Is(err, tpm2.TPMRCHandle) {
		t.Errorf("NV index on the second TPM: got %v, want TPM_RC_HANDLE", err)
	}
	if bytes.Equal(srkPublic(t, one), srkPublic(t, two)) {
		t.Errorf("two swtpm instances derive the same SRK")
	}
	if err := two.Close(); err != nil {
		t.Errorf("closing: %v", err)
	}
	if err := two.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestSWTPMStopEndsProcess(t *testing.T) {
	s := StartSWTPM(t)
	tpm := s.TPM()
	getRandom(t, tpm)
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	addr := s.Addr()

	s.Stop()
	if !p.exited() {
		t.Fatalf("swtpm still running after Stop")
	}
	if _, err := (tpm2.GetRandom{BytesRequested: 8}).Execute(tpm); err == nil {
		t.Errorf("connection still works after Stop")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}
	s.Stop() // again: nothing to do

	s.Restart(t) // from stopped
	getRandom(t, s.TPM())
}

func TestSWTPMSequentialConnections(t *testing.T) {
	s := StartSWTPM(t)
	for range 3 {
		tpm := s.TPM()
		getRandom(t, tpm)
		if err := tpm.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestForEachTPM(t *testing.T) {
	var ran []string
	ForEachTPM(t, func(t *testing.T, b *Backend) {
		ran = append(ran, b.Name)
		getRandom(t, b.TPM)
		switch b.Name {
		case "sim":
			if b.Restart != nil || b.SWTPM != nil {
				t.Errorf("sim backend has Restart or SWTPM set")
			}
		case "swtpm":
			defineAndWrite(t, b.TPM, []byte("restart!"))
			old := b.TPM
			tpm := b.Restart(t)
			if b.TPM != tpm || tpm == old {
				t.Errorf("Restart did not replace b.TPM")
			}
			if _, err := (tpm2.GetRandom{BytesRequested: 8}).Execute(old); err == nil {
				t.Errorf("old connection still works after Restart")
			}
			if got := readNV(t, tpm, 8); string(got) != "restart!" {
				t.Errorf("NV after Restart = %q", got)
			}
		default:
			t.Errorf("unexpected backend %q", b.Name)
		}
	})
	t.Logf("ran on %v", ran)
}

// TestMissingSWTPM runs the test binary again with an empty PATH: without
// TPMCARD_REQUIRE_SWTPM the test skips, with it the test fails.
func TestMissingSWTPM(t *testing.T) {
	if os.Getenv("TPMTEST_CHILD") == "1" {
		StartSWTPM(t)
		t.Fatal("StartSWTPM returned without swtpm")
	}
	run := func(require string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingSWTPM$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "TPMTEST_CHILD=1", "PATH="+t.TempDir(), RequireSWTPMEnv+"="+require)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("")
	if err != nil || !strings.Contains(out, "--- SKIP") || !strings.Contains(out, "swtpm not installed") {
		t.Errorf("without %s: err %v, want a skip naming swtpm:\n%s", RequireSWTPMEnv, err, out)
	}
	out, err = run("1")
	if err == nil || !strings.Contains(out, "--- FAIL") || !strings.Contains(out, "swtpm not installed") {
		t.Errorf("with %s=1: err %v, want a failure naming swtpm:\n%s", RequireSWTPMEnv, err, out)
	}
}

// A client that reconnects by itself, as the service's TPM link does, may
// take swtpm's command and control ports the moment they listen (go-tpm's
// TCP transport holds both). Restart must not wait on either port: it
// used to probe the control port and time out behind such a client.
func TestSWTPMRestartUnderAReconnectingClient(t *testing.T) {
	s := StartSWTPM(t)
	s.Stop()
	spec := s.specLocked()
	held := make(chan transport.TPMCloser, 1)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if tpm, err := backend.Open(spec); err == nil {
				held <- tpm
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer close(stop)
	start := time.Now()
	s.Restart(t)
	var tpm transport.TPMCloser
	select {
	case tpm = <-held:
	case <-time.After(readyTimeout):
		t.Fatal("the reconnecting client never reached the restarted swtpm")
	}
	defer tpm.Close()
	t.Logf("restart took %v", time.Since(start))
	getRandom(t, tpm)
}
