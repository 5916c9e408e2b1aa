// table tests
