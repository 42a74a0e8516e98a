module taxi

go 1.22
