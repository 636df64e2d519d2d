module satwatt

go 1.25.10

// lnd's generated protobuf code needs lightninglabs' fork (UseHexForBytes);
// without it any package importing lnrpc fails to build.
replace google.golang.org/protobuf => github.com/lightninglabs/protobuf-go-hex-display v1.33.0-hex-display

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	go.einride.tech/can v0.17.0 // indirect
)
