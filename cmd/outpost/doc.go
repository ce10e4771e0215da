// Command outpost runs and drives an Outpost node. See internal/cli.
package main
