package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/client"
)

// ---- users ----

func (a *cliApp) newUserCmd() *cobra.Command {
	cmd := newParentCmd("user", "Manage users", "users")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List users",
			Args:  usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				users, err := c.Users(cmd.Context())
				if err != nil {
					return err
				}
				return printList(a, users, []column[api.User]{
					{"USERID", func(u api.User) string { return u.UserID }},
					{"ENABLED", func(u api.User) string { return yesNo(u.Enabled) }},
					{"NAME", func(u api.User) string { return strings.TrimSpace(u.FirstName + " " + u.LastName) }},
					{"EMAIL", func(u api.User) string { return u.Email }},
					{"GROUPS", func(u api.User) string { return strings.Join(u.Groups, ",") }},
					{"EXPIRE", func(u api.User) string { return fmtTimePtr(u.Expire) }},
					{"COMMENT", func(u api.User) string { return u.Comment }},
				})
			},
		},
		&cobra.Command{
			Use:   "show USERID",
			Short: "Show one user",
			Args:  usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				u, err := c.User(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return a.printObject(u, []kvField{
					{"userid", u.UserID},
					{"enabled", yesNo(u.Enabled)},
					{"firstname", u.FirstName},
					{"lastname", u.LastName},
					{"email", u.Email},
					{"groups", strings.Join(u.Groups, ",")},
					{"expire", fmtTimePtr(u.Expire)},
					{"comment", u.Comment},
					{"digest", u.Digest},
				})
			},
		},
		a.newUserCreateCmd(),
		a.newUserUpdateCmd(),
		&cobra.Command{
			Use:   "delete USERID",
			Short: "Delete a user",
			Args:  usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				if err := c.DeleteUser(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "User %s deleted.\n", args[0])
				return nil
			},
		},
	)
	return cmd
}

// userFlags are the editable user fields shared by create and update.
type userFlags struct {
	password, email, firstname, lastname, comment, expire string
	passwordStdin, enabled                                bool
	groups                                                []string
}

func (f *userFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.password, "password", "", "password (corral realm only; prefer --password-stdin)")
	fs.BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	fs.StringVar(&f.email, "email", "", "e-mail address")
	fs.StringVar(&f.firstname, "firstname", "", "first name")
	fs.StringVar(&f.lastname, "lastname", "", "last name")
	fs.StringVar(&f.comment, "comment", "", "comment")
	fs.StringSliceVar(&f.groups, "groups", nil, "groups (comma-separated or repeated)")
	fs.BoolVar(&f.enabled, "enabled", true, "whether the account may log in")
	fs.StringVar(&f.expire, "expire", "", "account expiry, RFC 3339 or YYYY-MM-DD")
}

// readPassword returns the password from --password or --password-stdin,
// or nil when neither was given.
func (a *cliApp) readPassword(f *userFlags, fs *pflag.FlagSet) (*string, error) {
	if fs.Changed("password") && f.passwordStdin {
		return nil, usageErrorf("--password and --password-stdin are mutually exclusive")
	}
	if f.passwordStdin {
		p, err := a.readSecret("", true)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		return &p, nil
	}
	if fs.Changed("password") {
		return &f.password, nil
	}
	return nil, nil
}

func (a *cliApp) newUserCreateCmd() *cobra.Command {
	var f userFlags
	cmd := &cobra.Command{
		Use:   "create USERID",
		Short: "Create a user (USERID is name@realm)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			req := api.UserCreate{
				UserID:    args[0],
				FirstName: f.firstname,
				LastName:  f.lastname,
				Email:     f.email,
				Comment:   f.comment,
				Groups:    f.groups,
			}
			if fs.Changed("enabled") {
				req.Enabled = &f.enabled
			}
			if f.expire != "" {
				t, err := parseTimeArg(f.expire)
				if err != nil {
					return usageErrorf("--expire: %v", err)
				}
				req.Expire = &t
			}
			pw, err := a.readPassword(&f, fs)
			if err != nil {
				return err
			}
			if pw != nil {
				req.Password = *pw
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.CreateUser(cmd.Context(), req); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "User %s created.\n", args[0])
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func (a *cliApp) newUserUpdateCmd() *cobra.Command {
	var f userFlags
	var digest string
	cmd := &cobra.Command{
		Use:   "update USERID",
		Short: "Change a user; only the given flags are changed",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			var req api.UserUpdate
			changed := false
			str := func(name string, val *string) *string {
				if fs.Changed(name) {
					changed = true
					return val
				}
				return nil
			}
			req.Email = str("email", &f.email)
			req.FirstName = str("firstname", &f.firstname)
			req.LastName = str("lastname", &f.lastname)
			req.Comment = str("comment", &f.comment)
			if fs.Changed("groups") {
				req.Groups, changed = &f.groups, true
			}
			if fs.Changed("enabled") {
				req.Enabled, changed = &f.enabled, true
			}
			if fs.Changed("expire") {
				t, err := parseTimeArg(f.expire)
				if err != nil {
					return usageErrorf("--expire: %v", err)
				}
				req.Expire, changed = &t, true
			}
			pw, err := a.readPassword(&f, fs)
			if err != nil {
				return err
			}
			if pw != nil {
				req.Password, changed = pw, true
			}
			if !changed {
				return usageErrorf("nothing to update: give at least one field flag")
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.UpdateUser(cmd.Context(), args[0], req, client.WithIfMatch(digest)); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "User %s updated.\n", args[0])
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&digest, "digest", "", "only update if the user's digest still matches (sent as If-Match)")
	return cmd
}

// parseTimeArg accepts RFC 3339 or a plain date (midnight UTC), the two
// forms people actually type for expiry dates.
func parseTimeArg(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor YYYY-MM-DD", s)
}

// ---- groups ----

func (a *cliApp) newGroupCmd() *cobra.Command {
	cmd := newParentCmd("group", "Manage groups", "groups")
	var comment string
	create := &cobra.Command{
		Use:   "create GROUPID",
		Short: "Create a group",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.CreateGroup(cmd.Context(), api.Group{GroupID: args[0], Comment: comment}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Group %s created.\n", args[0])
			return nil
		},
	}
	create.Flags().StringVar(&comment, "comment", "", "comment")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List groups",
			Args:  usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				groups, err := c.Groups(cmd.Context())
				if err != nil {
					return err
				}
				return printList(a, groups, []column[api.Group]{
					{"GROUPID", func(g api.Group) string { return g.GroupID }},
					{"MEMBERS", func(g api.Group) string { return strings.Join(g.Members, ",") }},
					{"COMMENT", func(g api.Group) string { return g.Comment }},
				})
			},
		},
		create,
		&cobra.Command{
			Use:   "delete GROUPID",
			Short: "Delete a group",
			Args:  usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				if err := c.DeleteGroup(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Group %s deleted.\n", args[0])
				return nil
			},
		},
	)
	return cmd
}

// ---- roles ----

func (a *cliApp) newRoleCmd() *cobra.Command {
	cmd := newParentCmd("role", "Manage roles", "roles")
	var createPrivs, updatePrivs []string
	var digest string
	create := &cobra.Command{
		Use:   "create ROLEID --privs P1,P2",
		Short: "Create a role",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("privs") {
				return usageErrorf("--privs is required")
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.CreateRole(cmd.Context(), api.Role{RoleID: args[0], Privs: createPrivs}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Role %s created.\n", args[0])
			return nil
		},
	}
	create.Flags().StringSliceVar(&createPrivs, "privs", nil, "privileges (comma-separated or repeated)")
	update := &cobra.Command{
		Use:   "update ROLEID --privs P1,P2",
		Short: "Replace a role's privileges",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("privs") {
				return usageErrorf("--privs is required")
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			// --privs "" empties the role.
			if _, err := c.UpdateRole(cmd.Context(), args[0], updatePrivs, client.WithIfMatch(digest)); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Role %s updated.\n", args[0])
			return nil
		},
	}
	update.Flags().StringSliceVar(&updatePrivs, "privs", nil, "privileges (comma-separated or repeated)")
	update.Flags().StringVar(&digest, "digest", "", "only update if the role's digest still matches (sent as If-Match)")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List roles",
			Args:  usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				roles, err := c.Roles(cmd.Context())
				if err != nil {
					return err
				}
				return printList(a, roles, []column[api.Role]{
					{"ROLEID", func(r api.Role) string { return r.RoleID }},
					{"BUILTIN", func(r api.Role) string { return yesNo(r.Builtin) }},
					{"PRIVS", func(r api.Role) string { return strings.Join(r.Privs, ",") }},
				})
			},
		},
		create,
		update,
		&cobra.Command{
			Use:   "delete ROLEID",
			Short: "Delete a role",
			Args:  usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				if err := c.DeleteRole(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Role %s deleted.\n", args[0])
				return nil
			},
		},
	)
	return cmd
}

// ---- ACL ----

func (a *cliApp) newACLCmd() *cobra.Command {
	cmd := newParentCmd("acl", "Manage access control lists")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List ACL entries",
			Args:  usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				entries, err := c.ACL(cmd.Context())
				if err != nil {
					return err
				}
				return printList(a, entries, []column[api.ACLEntry]{
					{"PATH", func(e api.ACLEntry) string { return e.Path }},
					{"TYPE", func(e api.ACLEntry) string { t, _ := aclSubject(e); return t }},
					{"SUBJECT", func(e api.ACLEntry) string { _, s := aclSubject(e); return s }},
					{"ROLE", func(e api.ACLEntry) string { return e.Role }},
					{"PROPAGATE", func(e api.ACLEntry) string { return yesNo(e.Propagate) }},
				})
			},
		},
		a.newACLChangeCmd("add", "Grant a role on a path", false),
		a.newACLChangeCmd("remove", "Revoke a role on a path", true),
	)
	return cmd
}

// aclSubject says whom an entry names.
func aclSubject(e api.ACLEntry) (kind, id string) {
	switch {
	case e.User != "":
		return "user", e.User
	case e.Group != "":
		return "group", e.Group
	case e.Token != "":
		return "token", e.Token
	}
	return "", ""
}

func (a *cliApp) newACLChangeCmd(use, short string, remove bool) *cobra.Command {
	var e api.ACLEntry
	cmd := &cobra.Command{
		Use:   use + " --path P --role R (--user U | --group G | --token T)",
		Short: short,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if e.Path == "" || e.Role == "" {
				return usageErrorf("--path and --role are required")
			}
			n := 0
			for _, s := range []string{e.User, e.Group, e.Token} {
				if s != "" {
					n++
				}
			}
			if n != 1 {
				return usageErrorf("give exactly one of --user, --group and --token")
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.UpdateACL(cmd.Context(), api.ACLUpdate{Entries: []api.ACLEntry{e}, Delete: remove}); err != nil {
				return err
			}
			kind, id := aclSubject(e)
			if remove {
				fmt.Fprintf(a.stdout, "Removed role %s on %s from %s %s.\n", e.Role, e.Path, kind, id)
			} else {
				fmt.Fprintf(a.stdout, "Granted role %s on %s to %s %s.\n", e.Role, e.Path, kind, id)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&e.Path, "path", "", "object path, e.g. /, /vms/100, /nodes/node1")
	fs.StringVar(&e.Role, "role", "", "role ID")
	fs.StringVar(&e.User, "user", "", "user ID (user@realm)")
	fs.StringVar(&e.Group, "group", "", "group ID")
	fs.StringVar(&e.Token, "token", "", "token ID (user@realm!name)")
	fs.BoolVar(&e.Propagate, "propagate", true, "also apply to paths below")
	return cmd
}

// ---- tokens ----

// tokenArgs accepts "USER NAME" or the full token ID "USER!NAME".
func tokenArgs(args []string) (user, name string, err error) {
	if len(args) == 2 {
		user, name = args[0], args[1]
	} else {
		i := strings.LastIndex(args[0], "!")
		if i < 0 {
			return "", "", usageErrorf("want USER NAME or USER!NAME, got %q", args[0])
		}
		user, name = args[0][:i], args[0][i+1:]
	}
	if user == "" || name == "" {
		return "", "", usageErrorf("user and token name must not be empty")
	}
	return user, name, nil
}

func (a *cliApp) newTokenCmd() *cobra.Command {
	cmd := newParentCmd("token", "Manage API tokens", "tokens")
	var privsep bool
	var comment, expire string
	create := &cobra.Command{
		Use:   "create USER NAME",
		Short: "Create an API token; its secret is shown only once",
		Args:  usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			user, name, err := tokenArgs(args)
			if err != nil {
				return err
			}
			req := api.TokenCreate{Privsep: &privsep, Comment: comment}
			if expire != "" {
				t, err := parseTimeArg(expire)
				if err != nil {
					return usageErrorf("--expire: %v", err)
				}
				req.Expire = &t
			}
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			sec, err := c.CreateToken(cmd.Context(), user, name, req)
			if err != nil {
				return err
			}
			if a.output == formatTable {
				defer fmt.Fprintln(a.stderr, "Store the secret now: it cannot be shown again.")
			}
			return a.printObject(sec, []kvField{
				{"tokenid", sec.TokenID},
				{"secret", sec.Secret},
				{"privsep", yesNo(sec.Token.Privsep)},
				{"expire", fmtTimePtr(sec.Token.Expire)},
				{"comment", sec.Token.Comment},
			})
		},
	}
	create.Flags().BoolVar(&privsep, "privsep", true, "privilege separation: the token gets only the ACL entries naming it")
	create.Flags().StringVar(&comment, "comment", "", "comment")
	create.Flags().StringVar(&expire, "expire", "", "expiry, RFC 3339 or YYYY-MM-DD")

	cmd.AddCommand(
		&cobra.Command{
			Use:   "list [USER]",
			Short: "List a user's API tokens (default: your own)",
			Args:  usageArgs(cobra.MaximumNArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, plan, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				user := plan.identity()
				if len(args) == 1 {
					user = args[0]
				}
				if user == "" {
					return usageErrorf("give the USER whose tokens to list")
				}
				tokens, err := c.Tokens(cmd.Context(), user)
				if err != nil {
					return err
				}
				return printList(a, tokens, []column[api.Token]{
					{"TOKENID", func(t api.Token) string { return t.TokenID }},
					{"PRIVSEP", func(t api.Token) string { return yesNo(t.Privsep) }},
					{"EXPIRE", func(t api.Token) string { return fmtTimePtr(t.Expire) }},
					{"COMMENT", func(t api.Token) string { return t.Comment }},
				})
			},
		},
		create,
		&cobra.Command{
			Use:   "delete USER NAME",
			Short: "Revoke an API token",
			Args:  usageArgs(cobra.RangeArgs(1, 2)),
			RunE: func(cmd *cobra.Command, args []string) error {
				user, name, err := tokenArgs(args)
				if err != nil {
					return err
				}
				c, _, err := a.connect(false)
				if err != nil {
					return err
				}
				defer c.Close()
				if err := c.DeleteToken(cmd.Context(), user, name); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Token %s!%s deleted.\n", user, name)
				return nil
			},
		},
	)
	return cmd
}

// ---- realms ----

func (a *cliApp) newRealmCmd() *cobra.Command {
	cmd := newParentCmd("realm", "Show authentication realms", "realms")
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List realms",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := a.connect(false)
			if err != nil {
				return err
			}
			defer c.Close()
			realms, err := c.Realms(cmd.Context())
			if err != nil {
				return err
			}
			return printList(a, realms, []column[api.Realm]{
				{"REALM", func(r api.Realm) string { return r.Realm }},
				{"TYPE", func(r api.Realm) string { return r.Type }},
				{"DEFAULT", func(r api.Realm) string { return yesNo(r.Default) }},
				{"COMMENT", func(r api.Realm) string { return r.Comment }},
			})
		},
	})
	return cmd
}
