module idleguard

go 1.26
