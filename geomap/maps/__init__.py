"""Maps: Folium builders that take data and styles (never a connection); assets served locally."""
