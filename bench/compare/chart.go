package main

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
)

// writeChart draws one bar per workload: accord's advantage over etcd on a log scale (the
// middle line is parity; a bar above it means accord is better, its height the factor up to
// 10x). Green above, red below.
func writeChart(path string, advantages []float64) error {
	const width, height, barWidth, gap = 640, 320, 48, 24
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	white := color.RGBA{255, 255, 255, 255}
	grey := color.RGBA{160, 160, 160, 255}
	green := color.RGBA{46, 160, 67, 255}
	red := color.RGBA{200, 60, 60, 255}
	for y := 0; y < height; y++ {
		for x := 0; x < width; x++ {
			img.Set(x, y, white)
		}
	}
	middle := height / 2
	for x := 0; x < width; x++ {
		img.Set(x, middle, grey)
	}
	for i, advantage := range advantages {
		if advantage <= 0 || math.IsNaN(advantage) || math.IsInf(advantage, 0) {
			continue
		}
		// log10: 10x better reaches the top, 10x worse the bottom.
		h := int(math.Max(-1, math.Min(1, math.Log10(advantage))) * float64(middle-10))
		x0 := gap + i*(barWidth+gap)
		colour := green
		top, bottom := middle-h, middle
		if h < 0 {
			colour = red
			top, bottom = middle, middle-h
		}
		for y := top; y <= bottom; y++ {
			for x := x0; x < x0+barWidth && x < width; x++ {
				img.Set(x, y, colour)
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}
