package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// dayChart is the history page's chart of daily energy (bars, left axis)
// and sats (line, right axis), laid out here in integer SVG units so the
// template only places what is computed and the page needs no script.
type dayChart struct {
	W, H                     int64
	Left, Top, Right, Bottom int64 // the plot area's edges
	PlotH                    int64
	Bars                     []chartBar
	SatsPath                 string
	LeftTicks, RightTicks    []chartTick
	XLabels                  []chartTick
}

type chartBar struct {
	X, Y, W, H      int64
	SlotX, SlotW    int64 // the whole day's column, for hovering
	DotX, DotY      int64 // the day's sats point
	Title           string
	Period          string
	EnergyMWh, Msat int64
}

type chartTick struct {
	X, Y  int64
	Label string
}

// Chart geometry, in SVG user units (the SVG scales to the page width).
const (
	chartW      = 800
	chartH      = 300
	chartLeft   = 76
	chartRight  = chartW - 84
	chartTop    = 36
	chartBottom = chartH - 36
	chartTicks  = 4
)

// newDayChart lays out days (oldest first); nil when there is nothing to
// draw.
func newDayChart(days []PeriodRow) *dayChart {
	if len(days) == 0 {
		return nil
	}
	c := &dayChart{W: chartW, H: chartH, Left: chartLeft, Top: chartTop,
		Right: chartRight, Bottom: chartBottom, PlotH: chartBottom - chartTop}
	var maxE, maxS int64
	for _, d := range days {
		maxE = max(maxE, d.DeliveredMWh)
		maxS = max(maxS, d.PaidMsat)
	}
	// At least 1 Wh and 1 sat a step keeps tick labels whole.
	stepE, topE := niceScale(maxE, chartTicks, 1000)
	stepS, topS := niceScale(maxS, chartTicks, 1000)
	plotH := int64(chartBottom - chartTop)
	yOf := func(v, top int64) int64 {
		if v <= 0 {
			return chartBottom
		}
		return chartBottom - scale(v, plotH, top)
	}
	for v := int64(0); v <= topE; v += stepE {
		c.LeftTicks = append(c.LeftTicks, chartTick{X: chartLeft - 6, Y: yOf(v, topE), Label: FormatEnergy(v)})
	}
	for v := int64(0); v <= topS; v += stepS {
		c.RightTicks = append(c.RightTicks, chartTick{X: chartRight + 6, Y: yOf(v, topS), Label: FormatSat(v)})
	}

	n := int64(len(days))
	plotW := int64(chartRight - chartLeft)
	every := (n + 7) / 8 // at most about 8 date labels
	var path strings.Builder
	for i, d := range days {
		x0 := chartLeft + plotW*int64(i)/n
		x1 := chartLeft + plotW*int64(i+1)/n
		slot := x1 - x0
		// A few days would make wide slabs; a bar stays bar-shaped.
		bw := min(max(slot*7/10, 1), 48)
		y := yOf(d.DeliveredMWh, topE)
		b := chartBar{X: x0 + (slot-bw)/2, Y: y, W: bw, H: chartBottom - y,
			SlotX: x0, SlotW: max(slot, 1), DotX: x0 + slot/2, DotY: yOf(d.PaidMsat, topS),
			Period: d.Period, EnergyMWh: d.DeliveredMWh, Msat: d.PaidMsat}
		b.Title = fmt.Sprintf("%s: %s, %s, %d session%s, %d payment%s", d.Period,
			FormatEnergy(d.DeliveredMWh), FormatSat(d.PaidMsat),
			d.Sessions, plural(d.Sessions), d.Payments, plural(d.Payments))
		c.Bars = append(c.Bars, b)
		if i == 0 {
			path.WriteString("M")
		} else {
			path.WriteString(" L")
		}
		path.WriteString(strconv.FormatInt(b.DotX, 10) + " " + strconv.FormatInt(b.DotY, 10))
		if int64(i)%every == 0 {
			c.XLabels = append(c.XLabels, chartTick{X: b.DotX, Y: chartBottom + 18, Label: shortDay(d.Period)})
		}
	}
	c.SatsPath = path.String()
	return c
}

// scale is v*span/top without overflowing for large v.
func scale(v, span, top int64) int64 {
	if top <= 0 {
		return 0
	}
	if v <= math.MaxInt64/span {
		return v * span / top
	}
	return v / (top / span)
}

// niceScale picks a 1-2-5 step of at least minStep so that about n steps
// cover maxV, and the axis top (a whole number of steps, at least one).
func niceScale(maxV int64, n int, minStep int64) (step, top int64) {
	target := max((maxV+int64(n)-1)/int64(n), minStep, 1)
	step = target
	for mag := int64(1); mag <= math.MaxInt64/10; mag *= 10 {
		if c := pick125(mag, target); c > 0 {
			step = c
			break
		}
	}
	top = maxV / step * step
	if top < maxV || top < step {
		top += step
	}
	return step, top
}

// pick125 is the smallest of 1, 2, 5 times mag that reaches target, or 0.
func pick125(mag, target int64) int64 {
	for _, m := range []int64{1, 2, 5} {
		if m*mag >= target {
			return m * mag
		}
	}
	return 0
}

// shortDay drops the year of "2026-11-25" for the axis.
func shortDay(p string) string {
	if len(p) == len("2006-01-02") {
		return p[5:]
	}
	return p
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
