module github.com/accord-engine/accord/bindings/go

go 1.22
