"""The rules of disclosure, as data and pure functions: the catalogue, working days and
deadlines, who publishes, what intake accepts, what is withheld, the state names."""
