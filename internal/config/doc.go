// Package config holds Outpost's configuration as plain structs with
// defaults and a Validate that reports every problem at once. Parsing
// (file, environment, flags) lives in the CLI; domain packages receive the
// parts they need and never parse anything themselves.
package config
