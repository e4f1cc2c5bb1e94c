package agent

func runTestAgent() int { return 3 }
