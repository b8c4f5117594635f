package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// writeChart draws one labelled row per workload: accord's advantage over etcd as a bar on a
// log scale around the parity line (right and green: accord is better by that factor; left
// and red: etcd is), with the factor written at the bar's end.
func writeChart(path string, names []string, advantages []float64) error {
	const labelWidth, plotWidth, rowHeight, margin = 300, 520, 24, 16
	height := margin*2 + rowHeight*(len(names)+1)
	width := labelWidth + plotWidth + margin*2
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{255, 255, 255, 255}}, image.Point{}, draw.Src)
	grey := color.RGBA{160, 160, 160, 255}
	black := color.RGBA{0, 0, 0, 255}
	green := color.RGBA{46, 160, 67, 255}
	red := color.RGBA{200, 60, 60, 255}
	text := func(x, y int, c color.Color, s string) {
		d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13,
			Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	// log10 scale: a factor of 10 (either way) reaches the plot's edge.
	half := plotWidth/2 - 60
	parity := margin + labelWidth + plotWidth/2
	text(margin, margin+13, black, "accord vs etcd (log scale; right of the line: accord better)")
	for y := margin + rowHeight; y < height-margin; y++ {
		img.Set(parity, y, grey)
	}
	for i, advantage := range advantages {
		y0 := margin + rowHeight*(i+1)
		text(margin, y0+16, black, names[i])
		if advantage <= 0 || math.IsNaN(advantage) || math.IsInf(advantage, 0) {
			continue
		}
		w := int(math.Max(-1, math.Min(1, math.Log10(advantage))) * float64(half))
		colour, left, right := green, parity, parity+w
		label := fmt.Sprintf("%.2fx accord", advantage)
		if w < 0 {
			colour, left, right = red, parity+w, parity
			label = fmt.Sprintf("%.2fx etcd", 1/advantage)
		}
		draw.Draw(img, image.Rect(left, y0+4, right+1, y0+rowHeight-4), &image.Uniform{colour}, image.Point{}, draw.Src)
		if w < 0 {
			text(left-len(label)*7-4, y0+16, black, label)
		} else {
			text(right+4, y0+16, black, label)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}
