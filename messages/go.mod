module github.com/nexus-broker/nexus/messages

go 1.26.0
