"""The elasticity model: demand response to price per category (double ML), and profit-optimal prices."""
