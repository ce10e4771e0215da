package cli

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// azArgs makes one command's flags parse the way az's argparse parses
// them, which pflag alone does not:
//   - extra long names: --fnd for --fileupload-notification-max-delivery-count,
//     --system for --system-assigned (alias);
//   - three-state booleans: `--fn`, `--fn true`, `--fn=false` (triState);
//   - nargs lists: `--user-assigned ID1 ID2`, `--set a=1 b=2` (list).
//
// It turns pflag's interspersed parsing off, so parsing stops at the first
// word that is not a flag's own value; finish then hands such words to the
// flag before them, as argparse does, and parses the rest of the line.
type azArgs struct {
	aliases map[string]string
	// last is the flag value set most recently: the one that bare words
	// after it continue.
	last pflag.Value
}

func newAZArgs(cmd *cobra.Command) *azArgs {
	a := &azArgs{aliases: map[string]string{}}
	cmd.Args = cobra.ArbitraryArgs
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if canon, ok := a.aliases[name]; ok {
			return pflag.NormalizedName(canon)
		}
		return pflag.NormalizedName(name)
	})
	return a
}

// alias lets each of names stand for the flag canon.
func (a *azArgs) alias(canon string, names ...string) {
	for _, n := range names {
		a.aliases[n] = canon
	}
}

// finish parses what pflag left over: bare words continue the flag before
// them; flags after them are parsed in turn. A --help found on the way
// shows the help.
func (a *azArgs) finish(cmd *cobra.Command, args []string) error {
	fs := cmd.Flags()
	for len(args) > 0 {
		i := 0
		for ; i < len(args) && !isFlagWord(args[i]); i++ {
			if !a.continueLast(args[i]) {
				return usageErrorf("unrecognized arguments: %s (see '%s --help')", strings.Join(args[i:], " "), cmd.CommandPath())
			}
		}
		if args = args[i:]; len(args) == 0 {
			break
		}
		if err := fs.Parse(args); err != nil {
			return usageErrorf("%v (see '%s --help')", err, cmd.CommandPath())
		}
		args = fs.Args()
	}
	if h := fs.Lookup("help"); h != nil && h.Changed {
		return cmd.Help()
	}
	return nil
}

// isFlagWord tells a flag from a value; "-1" is a value.
func isFlagWord(s string) bool {
	return len(s) > 1 && s[0] == '-' && (s[1] < '0' || s[1] > '9')
}

func (a *azArgs) continueLast(word string) bool {
	switch v := a.last.(type) {
	case *list:
		v.add(word)
		return true
	case *triState:
		b, ok := parseAzBool(word)
		if !ok {
			return false
		}
		v.val = b
		a.last = nil // argparse's nargs='?' takes one word at most
		return true
	}
	return false
}

// triState is az's get_three_state_flag: absent, true or false.
type triState struct {
	a   *azArgs
	set bool
	val bool
}

func (t *triState) Set(s string) error {
	b, ok := parseAzBool(s)
	if !ok {
		return usageErrorf("invalid choice: %q (choose from 'false', 'true')", s)
	}
	t.set, t.val = true, b
	t.a.last = t
	return nil
}

func (t *triState) String() string {
	if !t.set {
		return ""
	}
	if t.val {
		return "true"
	}
	return "false"
}

// Type is "bool" so pflag shows the flag without a value placeholder.
func (t *triState) Type() string { return "bool" }

// ptr is the value as az's namespace holds it: nil when not given.
func (t *triState) ptr() *bool {
	if !t.set {
		return nil
	}
	v := t.val
	return &v
}

func parseAzBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// triStateFlag adds a three-state boolean flag and its aliases.
func (a *azArgs) triStateFlag(cmd *cobra.Command, name, short, usage string, aliases ...string) *triState {
	t := &triState{a: a}
	f := cmd.Flags().VarPF(t, name, short, usage+aliasNote(aliases)+" (true or false; alone: true)")
	f.NoOptDefVal = "true"
	a.alias(name, aliases...)
	return t
}

// listBare is what pflag passes Set for a list flag given without "=":
// its words follow as bare words.
const listBare = "+1"

// list is an argparse nargs flag: every word after it up to the next flag,
// and every repetition of the flag, add to it. groups keeps the words of
// each occurrence apart (--add path k=v k2=v2 is one operation).
type list struct {
	a      *azArgs
	groups [][]string
	given  bool
	// onSet, when set, hears of every occurrence of the flag.
	onSet func()
}

func (l *list) Set(s string) error {
	l.given = true
	l.groups = append(l.groups, nil)
	if l.onSet != nil {
		l.onSet()
	}
	if s != listBare {
		l.add(s)
	}
	l.a.last = l
	return nil
}

func (l *list) add(word string) {
	if len(l.groups) == 0 {
		l.groups = append(l.groups, nil)
	}
	l.groups[len(l.groups)-1] = append(l.groups[len(l.groups)-1], word)
}

// values is every word given, in order.
func (l *list) values() []string {
	var out []string
	for _, g := range l.groups {
		out = append(out, g...)
	}
	return out
}

func (l *list) String() string { return strings.Join(l.values(), " ") }

// Type is "count" so that, with NoOptDefVal "+1", pflag's help shows the
// flag without a "[=…]" suffix; the usage text names the values.
func (l *list) Type() string { return "count" }

// listFlag adds an nargs flag; usage should name its values in backquotes.
func (a *azArgs) listFlag(cmd *cobra.Command, name, short, usage string, aliases ...string) *list {
	l := &list{a: a}
	f := cmd.Flags().VarPF(l, name, short, usage+aliasNote(aliases)+" (space-separated)")
	f.NoOptDefVal = listBare
	a.alias(name, aliases...)
	return l
}

func aliasNote(aliases []string) string {
	if len(aliases) == 0 {
		return ""
	}
	return " [also --" + strings.Join(aliases, ", --") + "]"
}

// stringFlag adds a string flag with az's extra long names.
func (a *azArgs) stringFlag(cmd *cobra.Command, p *string, name, short, def, usage string, aliases ...string) {
	cmd.Flags().StringVarP(p, name, short, def, usage+aliasNote(aliases))
	a.alias(name, aliases...)
}

// intFlag adds an int flag with az's extra long names.
func (a *azArgs) intFlag(cmd *cobra.Command, p *int, name, short string, def int, usage string, aliases ...string) {
	cmd.Flags().IntVarP(p, name, short, def, usage+aliasNote(aliases))
	a.alias(name, aliases...)
}
