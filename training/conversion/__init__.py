"""The conversion model: P(session converts) from performance KPIs and customer history, and the KPI what-if."""
