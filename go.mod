module github.com/mhc-project/mhc

go 1.19
