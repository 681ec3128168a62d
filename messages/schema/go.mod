module github.com/nexus-broker/nexus/messages/schema

go 1.26.0

replace github.com/nexus-broker/nexus/messages => ../

require (
	github.com/invopop/jsonschema v0.14.0
	github.com/nexus-broker/nexus/messages v0.0.0-00010101000000-000000000000
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
)

require (
	github.com/bahlo/generic-list-go v0.2.0 // indirect
	github.com/buger/jsonparser v1.1.2 // indirect
	github.com/pb33f/ordered-map/v2 v2.3.1 // indirect
	go.yaml.in/yaml/v4 v4.0.0-rc.2 // indirect
	golang.org/x/text v0.14.0 // indirect
)
