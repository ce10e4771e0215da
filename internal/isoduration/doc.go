// Package isoduration reads and writes the ISO 8601 durations Azure
// resource properties use ("PT1H", "P14D", .NET's TimeSpan.MaxValue
// "P10675199DT2H48M5.4775807S"), shared by every resource type that has them.
package isoduration
