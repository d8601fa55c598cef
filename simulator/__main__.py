from simulator.cli import simulate_command

simulate_command()
