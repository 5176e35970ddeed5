package tpmcard

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/tpmcard/tpmcard/tpmcard/tpmtest"
)

// maskedNeedle is a secret to look for in memory, kept XOR-masked so that
// the test itself holds no plain copy while it scans.
type maskedNeedle struct {
	mask, masked []byte
}

// newNeedle masks secret and wipes it.
func newNeedle(t *testing.T, secret []byte) *maskedNeedle {
	t.Helper()
	n := &maskedNeedle{mask: make([]byte, len(secret)), masked: make([]byte, len(secret))}
	if _, err := rand.Read(n.mask); err != nil {
		t.Fatal(err)
	}
	for i := range secret {
		n.masked[i] = secret[i] ^ n.mask[i]
	}
	wipe(secret)
	return n
}

// count counts the needle in buf, comparing masked bytes only.
func (n *maskedNeedle) count(buf []byte) int {
	c := 0
	last := len(buf) - len(n.masked)
outer:
	for i := 0; i <= last; i++ {
		if buf[i]^n.mask[0] != n.masked[0] {
			continue
		}
		for j := 1; j < len(n.masked); j++ {
			if buf[i+j]^n.mask[j] != n.masked[j] {
				continue outer
			}
		}
		c++
	}
	return c
}

type mapping struct {
	start, end uint64
	perms      string
	path       string
}

// goHeap finds the Go heap's mappings in /proc/self/maps. Go 1.26 puts its
// heap arenas at a random base and grows them upwards, each 64 MiB arena
// right after the last: the heap is the run of contiguous anonymous
// mappings around any heap object (goroutine stacks included, they are
// carved from the same arenas). C memory (the simulator's, which is the
// TPM's, not ours) is elsewhere: the binary's data segment and the C
// allocator's mappings.
func goHeap(t *testing.T) []mapping {
	t.Helper()
	small, large := new([64]byte), make([]byte, 1<<20)
	probes := []uint64{uint64(uintptr(unsafe.Pointer(small))), uint64(uintptr(unsafe.Pointer(&large[0])))}
	raw, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(small)
	runtime.KeepAlive(large)
	var maps []mapping
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		var m mapping
		var off, inode uint64
		var dev string
		n, _ := fmt.Sscanf(sc.Text(), "%x-%x %s %x %s %d %s", &m.start, &m.end, &m.perms, &off, &dev, &inode, &m.path)
		if n < 6 {
			t.Fatalf("parsing %q", sc.Text())
		}
		maps = append(maps, m)
	}
	k := -1
	for i, m := range maps {
		if probes[0] >= m.start && probes[0] < m.end {
			k = i
		}
	}
	if k < 0 || maps[k].path != "" {
		t.Fatalf("no anonymous mapping holds the heap object at %#x", probes[0])
	}
	lo, hi := k, k
	for lo > 0 && maps[lo-1].end == maps[lo].start && maps[lo-1].path == "" {
		lo--
	}
	for hi+1 < len(maps) && maps[hi].end == maps[hi+1].start && maps[hi+1].path == "" {
		hi++
	}
	heap := maps[lo : hi+1]
	if probes[1] < heap[0].start || probes[1] >= heap[len(heap)-1].end {
		t.Fatalf("a large heap object (%#x) lies outside the heap found (%#x-%#x)", probes[1], heap[0].start, heap[len(heap)-1].end)
	}
	return heap
}

// scanHeap counts each needle in this process's Go heap: its readable and
// writable mappings, read through /proc/self/mem into a buffer mapped
// outside it (so that the scan does not see its own copies).
func scanHeap(t *testing.T, needles ...*maskedNeedle) []int {
	t.Helper()
	const chunk = 4 << 20
	buf, err := syscall.Mmap(-1, 0, chunk, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(buf)
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	counts := make([]int, len(needles))
	overlap := 0
	for _, n := range needles {
		overlap = max(overlap, len(n.masked)-1)
	}
	scanned := 0
	for _, m := range goHeap(t) {
		if !strings.HasPrefix(m.perms, "rw") {
			continue
		}
		// Read the mapping in chunks that overlap by a needle's length,
		// so that no copy is cut in two.
		for off := m.start; off < m.end; {
			n := min(uint64(chunk), m.end-off)
			got, err := mem.ReadAt(buf[:n], int64(off))
			if err != nil && got == 0 {
				t.Fatalf("reading memory at %#x: %v", off, err)
			}
			for i, nd := range needles {
				counts[i] += nd.count(buf[:got])
			}
			scanned += got
			if off+n >= m.end {
				break
			}
			off += n - uint64(overlap)
		}
	}
	clear(buf)
	t.Logf("scanned %d MiB of Go heap", scanned>>20)
	return counts
}

// TestAttackAuthValueInMemoryAfterLogout reads this process's memory as an
// attacker with a memory image would (core dump, swap, ptrace): while a
// card is logged in its derived authValue is there (the login keeps it, so
// the scan can find it); after logout and a garbage collection, no copy
// is left, of either card, even after signatures, an eviction of the login
// session (two cards on the simulator's three session slots) and its
// rebuilding.
func TestAttackAuthValueInMemoryAfterLogout(t *testing.T) {
	tpmtest.ForEachTPM(t, func(t *testing.T, b *tpmtest.Backend) {
		m := openManager(t, b.TPM, "")
		var serials []string
		var needles []*maskedNeedle
		var keys [][]byte
		for i := 0; i < 2; i++ {
			serial := newCard(t, m)
			k := mustGenerate(t, m, serial, ECDSAP256)
			serials, keys = append(serials, serial), append(keys, k.ID)
			needles = append(needles, newNeedle(t, m.records[serial].authValue("pin", testPIN)))
		}
		// The argon2id output before its base64 encoding is the same
		// secret: it must not linger either (it is never kept, so it is
		// not looked for during the login).
		for _, serial := range serials {
			a := m.records[serial].authValue("pin", testPIN)
			raw := make([]byte, base64.RawStdEncoding.DecodedLen(len(a)))
			if _, err := base64.RawStdEncoding.Decode(raw, a); err != nil {
				t.Fatal(err)
			}
			wipe(a)
			needles = append(needles, newNeedle(t, raw))
		}
		digest := sha256.Sum256([]byte("challenge"))
		for round := 0; round < 3; round++ {
			for i, serial := range serials {
				if round == 0 {
					if err := m.Login(serial, testPIN); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := m.Sign(serial, keys[i], digest[:], SignOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i, c := range scanHeap(t, needles[:len(serials)]...) {
			t.Logf("card %d logged in: %d copies of its authValue", i, c)
			if c == 0 {
				t.Fatalf("card %d is logged in but the scan finds no copy of its authValue: the scan is blind", i)
			}
		}
		for _, serial := range serials {
			m.Logout(serial)
		}
		runtime.GC()
		for i, c := range scanHeap(t, needles...) {
			form := "authValue"
			if i >= len(serials) {
				i, form = i-len(serials), "raw argon2id output"
			}
			t.Logf("card %d logged out: %d copies of its %s", i, c, form)
			if c != 0 {
				t.Errorf("card %d: %d copies of its %s in memory after logout", i, c, form)
			}
		}
	})
}
