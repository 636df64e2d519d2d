module satwatt

go 1.25.10

// lnd's generated protobuf code needs lightninglabs' fork (UseHexForBytes);
// without it any package importing lnrpc fails to build.
replace google.golang.org/protobuf => github.com/lightninglabs/protobuf-go-hex-display v1.33.0-hex-display

require (
	github.com/BurntSushi/toml v1.6.0
	go.einride.tech/can v0.17.0
)

require (
	golang.org/x/net v0.38.0 // indirect
	golang.org/x/sync v0.11.0 // indirect
	golang.org/x/sys v0.31.0 // indirect
)
