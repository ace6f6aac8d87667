package intercept

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Fake is an in-memory IPTables for tests: chains hold rules as their
// rulespecs joined by spaces, the way List shows them (without quoting).
type Fake struct {
	mu     sync.Mutex
	chains map[string][]string // "table/chain" -> rules
	// Calls counts mutating calls, to check that Ensure is idempotent;
	// Reads counts the others.
	Calls, Reads int
}

// NewFake returns a Fake with the nat and filter tables' built-in chains.
func NewFake() *Fake {
	return &Fake{chains: map[string][]string{
		"nat/PREROUTING": nil, "nat/OUTPUT": nil, "nat/POSTROUTING": nil,
		"filter/INPUT": nil, "filter/FORWARD": nil, "filter/OUTPUT": nil,
	}}
}

var _ IPTables = (*Fake)(nil)

func key(table, chain string) string { return table + "/" + chain }

func builtin(chain string) bool {
	return chain == strings.ToUpper(chain) && !strings.Contains(chain, "-")
}

// ChainExists implements IPTables.
func (f *Fake) ChainExists(table, chain string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Reads++
	_, ok := f.chains[key(table, chain)]
	return ok, nil
}

// NewChain implements IPTables.
func (f *Fake) NewChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	if _, ok := f.chains[key(table, chain)]; ok {
		return fmt.Errorf("chain %s already exists", chain)
	}
	f.chains[key(table, chain)] = nil
	return nil
}

// ClearChain implements IPTables: it flushes the chain, creating it if needed.
func (f *Fake) ClearChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	f.chains[key(table, chain)] = nil
	return nil
}

// DeleteChain implements IPTables.
func (f *Fake) DeleteChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	rules, ok := f.chains[key(table, chain)]
	if !ok {
		return fmt.Errorf("no chain %s", chain)
	}
	if len(rules) > 0 {
		return fmt.Errorf("chain %s not empty", chain)
	}
	for k, rs := range f.chains {
		if strings.HasPrefix(k, table+"/") {
			for _, r := range rs {
				if jumpsTo(r, chain) {
					return fmt.Errorf("chain %s still referenced", chain)
				}
			}
		}
	}
	delete(f.chains, key(table, chain))
	return nil
}

// List implements IPTables, with the -P or -N line first as iptables -S prints.
func (f *Fake) List(table, chain string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Reads++
	rules, ok := f.chains[key(table, chain)]
	if !ok {
		return nil, fmt.Errorf("no chain %s", chain)
	}
	head := "-N " + chain
	if builtin(chain) {
		head = "-P " + chain + " ACCEPT"
	}
	out := []string{head}
	for _, r := range rules {
		out = append(out, "-A "+chain+" "+r)
	}
	return out, nil
}

// Exists implements IPTables.
func (f *Fake) Exists(table, chain string, rulespec ...string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Reads++
	rules, ok := f.chains[key(table, chain)]
	if !ok {
		return false, fmt.Errorf("no chain %s", chain)
	}
	want := strings.Join(rulespec, " ")
	for _, r := range rules {
		if r == want {
			return true, nil
		}
	}
	return false, nil
}

// Insert implements IPTables.
func (f *Fake) Insert(table, chain string, pos int, rulespec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	k := key(table, chain)
	rules, ok := f.chains[k]
	if !ok {
		return fmt.Errorf("no chain %s", chain)
	}
	if pos < 1 || pos > len(rules)+1 {
		return fmt.Errorf("index %d out of range", pos)
	}
	rules = append(rules[:pos-1], append([]string{strings.Join(rulespec, " ")}, rules[pos-1:]...)...)
	f.chains[k] = rules
	return nil
}

// Append implements IPTables.
func (f *Fake) Append(table, chain string, rulespec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	k := key(table, chain)
	if _, ok := f.chains[k]; !ok {
		return fmt.Errorf("no chain %s", chain)
	}
	f.chains[k] = append(f.chains[k], strings.Join(rulespec, " "))
	return nil
}

// Delete implements IPTables; a single numeric argument deletes by position,
// as iptables -D CHAIN N does.
func (f *Fake) Delete(table, chain string, rulespec ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	k := key(table, chain)
	rules, ok := f.chains[k]
	if !ok {
		return fmt.Errorf("no chain %s", chain)
	}
	if len(rulespec) == 1 {
		if n, err := strconv.Atoi(rulespec[0]); err == nil {
			if n < 1 || n > len(rules) {
				return fmt.Errorf("index %d out of range", n)
			}
			f.chains[k] = append(rules[:n-1], rules[n:]...)
			return nil
		}
	}
	want := strings.Join(rulespec, " ")
	for i, r := range rules {
		if r == want {
			f.chains[k] = append(rules[:i], rules[i+1:]...)
			return nil
		}
	}
	return errors.New("rule not found")
}

// Rules returns a copy of a chain's rules, or nil if it does not exist.
func (f *Fake) Rules(table, chain string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.chains[key(table, chain)]...)
}

// Flush empties a chain, as an operator or another agent might.
func (f *Fake) Flush(table, chain string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.chains[key(table, chain)]; ok {
		f.chains[key(table, chain)] = nil
	}
}
