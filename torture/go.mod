module github.com/accord-engine/accord/torture

go 1.26.0

require (
	github.com/accord-engine/accord/bindings/go v0.1.0
	github.com/anishathalye/porcupine v1.3.1
)

replace github.com/accord-engine/accord/bindings/go => ../bindings/go
