package cli

// The bench soak plots: memory, latency and delivery over time, drawn from
// the samples CSV with gonum/plot.

import (
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

func newBenchSoakPlotCommand() *cobra.Command {
	var csvFile, out string
	cmd := &cobra.Command{
		Use:   "plot --csv FILE --out DIR",
		Short: "Draw a soak run's memory, latency and delivery plots (PNG) from its samples CSV",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files, err := plotSoakCSV(csvFile, out)
			for _, f := range files {
				fmt.Fprintf(cmd.OutOrStdout(), "plot: %s\n", f)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&csvFile, "csv", "soak.csv", "the samples a soak run wrote")
	cmd.Flags().StringVar(&out, "out", ".", "directory the images are written to")
	return cmd
}

// soakColumns is the CSV by column name.
type soakColumns map[string][]float64

func readSoakCSV(file string) (soakColumns, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("soak plot: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("soak plot: %s: %w", file, err)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("soak plot: %s holds no samples", file)
	}
	cols := soakColumns{}
	for _, row := range rows[1:] {
		for i, name := range rows[0] {
			if i >= len(row) {
				continue
			}
			v, err := strconv.ParseFloat(row[i], 64)
			if err != nil {
				v = 0 // the time column
			}
			cols[name] = append(cols[name], v)
		}
	}
	return cols, nil
}

// series is one column against elapsed minutes, for the rows keep accepts.
func (c soakColumns) series(name string, keep func(i int) bool) plotter.XYs {
	var xy plotter.XYs
	for i, v := range c[name] {
		if keep(i) {
			xy = append(xy, plotter.XY{X: c["elapsed_s"][i] / 60, Y: v})
		}
	}
	return xy
}

// plotSoakCSV writes memory.png, latency.png and delivery.png into dir.
func plotSoakCSV(csvFile, dir string) ([]string, error) {
	cols, err := readSoakCSV(csvFile)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("soak plot: %w", err)
	}
	all := func(int) bool { return true }
	// The row after the drain has no latency (nothing was published).
	published := func(i int) bool { return cols["p99_ms"][i] > 0 }
	var files []string
	draw := func(name, title, ylabel string, lines ...any) error {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "minutes since the load started"
		p.Y.Label.Text = ylabel
		p.Y.Min = 0
		p.Add(plotter.NewGrid())
		if err := plotutil.AddLines(p, lines...); err != nil {
			return fmt.Errorf("soak plot %s: %w", name, err)
		}
		p.Legend.Top = true
		p.Legend.Left = true
		file := filepath.Join(dir, name)
		if err := p.Save(10*vg.Inch, 4*vg.Inch, file); err != nil {
			return fmt.Errorf("soak plot %s: %w", name, err)
		}
		files = append(files, file)
		return nil
	}
	if err := draw("memory.png", "Outpost memory during the soak", "MiB",
		"RSS", cols.series("rss_mib", all), "Go heap in use", cols.series("heap_inuse_mib", all)); err != nil {
		return files, err
	}
	if err := draw("latency.png", "publish → PUBACK latency per sampling interval", "ms",
		"p50", cols.series("p50_ms", published), "p99", cols.series("p99_ms", published)); err != nil {
		return files, err
	}
	// Backlog: messages acknowledged by the hub that an endpoint has not
	// yet handed to its reader.
	var lines []any
	for _, n := range soakEndpointNames() {
		var xy plotter.XYs
		for i, d := range cols["delivered_"+n] {
			xy = append(xy, plotter.XY{X: cols["elapsed_s"][i] / 60, Y: cols["acked"][i] - d})
		}
		lines = append(lines, n, xy)
	}
	if len(cols["acked"]) == 0 {
		return files, errors.New("soak plot: no acked column")
	}
	if err := draw("delivery.png", "messages acknowledged but not yet received, per endpoint", "messages", lines...); err != nil {
		return files, err
	}
	return files, nil
}
